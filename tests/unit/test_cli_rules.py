"""`rules explain` and `rules simulate` as rows: table, JSON and CSV beside the prose."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.harness import SLA, Harness
from ticketbridge.cli import app
from ticketbridge.store import Store

pytestmark = pytest.mark.anyio

RULES = {
    "timezone": "UTC",
    "tiers": [
        {"name": "Tier 1", "queue": "Service Desk"},
        {"name": "Tier 2", "queue": "Service Desk", "group": "Tier 2"},
    ],
    "rules": [
        {
            "name": "tiered-escalation",
            "when": {"queue": "Service Desk", "psa_status": ["New", "In Progress"]},
            "stop_when": ["closed", "conditions_false"],
            "chain": [
                {
                    "after": "30m",
                    "when": {"tier": "Tier 1"},
                    "actions": [{"type": "move_psa_ticket", "to_tier": "Tier 2"}],
                }
            ],
        },
        {
            "name": "vip-only",
            "when": {"queue": "VIP Desk"},
            "chain": [
                {"after": "5m", "actions": [{"type": "move_psa_ticket", "to_tier": "Tier 2"}]}
            ],
        },
    ],
}
ROUTING = {"queues": ["Vendor Escalations"], "watch_queues": ["Service Desk"]}
#: The tier step as `explain` announces it (an action ahead) and `simulate` runs it.
PLANNED = "move PSA ticket to tier 'Tier 2'"
MOVE = "move PSA ticket: tier 'Tier 2', queue 'Service Desk', group 'Tier 2'"


async def watched(store: Store, tmp_path: Path) -> tuple[Harness, Path]:
    """A ticket watched for the tier procedure, and a config file over the same store."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(yaml.safe_dump(RULES))
    h = Harness.build(
        store, sla_config=SLA, routing=ROUTING, extra={"rules": {"directory": str(directory)}}
    )
    h.psa_ticket("Printer jammed", queue="Service Desk", priority="P3")
    await h.engine.rules_sweep()
    await h.engine.rules_pass()
    await h.settle(rounds=3)
    cfg: dict[str, Any] = {
        "store": {"url": store.url.render_as_string(hide_password=False)},
        "systems": {
            "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
            "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
        },
        "connections": [{"name": "main", "psa": "psa", "vendor": "vendor", "routing": ROUTING}],
        "sla": SLA,
        "rules": {"directory": str(directory)},
    }
    path = tmp_path / "tb.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return h, path


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, env={"TTY_COMPATIBLE": "0"})


class TestExplainRows:
    async def test_json_has_a_row_per_rule_with_why_and_what_next(self, store, tmp_path):
        """Each rule is a row: whether it matches, the failing conditions, the next run."""
        h, path = await watched(store, tmp_path)
        link = h.link()
        at = h.clock.now().isoformat()
        result = invoke(
            ["rules", "explain", link.psa_ticket_id, "-c", str(path), "--at", at, "-f", "json"]
        )
        assert 0 == result.exit_code, result.output
        rows = {r["rule"]: r for r in json.loads(result.stdout)}
        assert {"tiered-escalation", "vip-only"} == set(rows)
        tiered, vip = rows["tiered-escalation"], rows["vip-only"]
        assert (True, False) == (tiered["matches"], vip["matches"])
        assert str(link.id) == tiered["link"]
        assert PLANNED == tiered["next"]
        assert tiered["next_at"].startswith(
            (h.clock.now() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
        )
        assert [] == tiered["failing"]
        assert any("VIP Desk" in reason for reason in vip["failing"])
        assert "Tier 1" == tiered["tier"]

    async def test_csv_and_table(self, store, tmp_path):
        h, path = await watched(store, tmp_path)
        ticket = h.link().psa_ticket_id
        at = h.clock.now().isoformat()
        as_csv = invoke(["rules", "explain", ticket, "-c", str(path), "--at", at, "-f", "csv"])
        assert 0 == as_csv.exit_code, as_csv.output
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert ["tiered-escalation", "vip-only"] == [r["rule"] for r in rows]
        assert isinstance(json.loads(rows[1]["failing"]), list)
        table = invoke(["rules", "explain", ticket, "-c", str(path), "--at", at, "-f", "table"])
        assert 0 == table.exit_code, table.output
        assert table.output.startswith(f"link {h.link().id} at ")
        line = next(x for x in table.output.splitlines() if "tiered-escalation" in x)
        assert PLANNED in line
        prose = invoke(["rules", "explain", ticket, "-c", str(path), "--at", at])
        assert "rule tiered-escalation [" in prose.output


class TestSimulateRows:
    async def test_json_lists_the_actions_that_would_run(self, store, tmp_path):
        """An hour on, the tier step would run: one action row; nothing is written."""
        h, path = await watched(store, tmp_path)
        at = (h.clock.now() + timedelta(hours=1)).isoformat()
        before = h.outbox()
        result = invoke(["rules", "simulate", "-c", str(path), "--at", at, "-f", "json"])
        assert 0 == result.exit_code, result.output
        rows = json.loads(result.stdout)
        actions = [r for r in rows if r["event"] == "action"]
        assert [(str(h.link().id), "tiered-escalation", MOVE)] == [
            (r["link"], r["rule"], r["detail"]) for r in actions
        ]
        assert actions[0]["run"].startswith("tiered-escalation")
        assert before == h.outbox()

    async def test_nothing_due_is_an_empty_list_and_a_message(self, store, tmp_path):
        h, path = await watched(store, tmp_path)
        at = (h.clock.now() + timedelta(minutes=1)).isoformat()
        result = invoke(["rules", "simulate", "-c", str(path), "--at", at, "-f", "json"])
        assert [] == [r for r in json.loads(result.stdout) if r["event"] == "action"]
        table = invoke(["rules", "simulate", "-c", str(path), "--at", at, "-f", "table"])
        assert table.output.startswith("rehearsal at ")
