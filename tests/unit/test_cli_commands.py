"""The command line for people and scripts: --version, completion, --format on every
listing, whole identifiers, bad filter values refused with the names that exist, outbox
rows that do not exist told apart from rows in the wrong state."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.cells import cell_len
from typer.testing import CliRunner

from tests.harness import SLA, Harness
from ticketbridge import __version__
from ticketbridge.cli import app
from ticketbridge.clock import FakeClock, utcnow
from ticketbridge.store import Store, repo

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PIPE: dict[str, str | None] = {"TTY_COMPATIBLE": "0"}
TERMINAL_60: dict[str, str | None] = {"TTY_COMPATIBLE": "1", "COLUMNS": "60", "NO_COLOR": "1"}
LONG_PSA = "PSA-TICKET-" + "1" * 45
LONG_VENDOR = "VENDOR-CASE-" + "7" * 45


def invoke(args: list[str], env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(app, args, env=env or PIPE, prog_name="ticketbridge")


def words(text: str) -> str:
    """The text's words, whatever the line breaks (and the boxes of typer's errors)."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def write_config(tmp_path: Path, store: Store, **extra: Any) -> Path:
    cfg = {
        "store": {"url": store.url.render_as_string(hide_password=False)},
        "systems": {
            "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
            "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
        },
        "connections": [
            {
                "name": "main",
                "psa": "psa",
                "vendor": "vendor",
                "routing": {"queues": ["Vendor Escalations"]},
            }
        ],
        **extra,
    }
    path = tmp_path / "tb.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def add_link(store: Store, psa_ticket: str, vendor_ticket: str, **values: Any) -> int:
    now = utcnow()
    row = {
        "connection": "main",
        "psa_system": "psa",
        "psa_ticket_id": psa_ticket,
        "vendor_system": "vendor",
        "vendor_ticket_id": vendor_ticket,
        "state": "open",
        "origin": "routed",
        "company": "ACME",
        "psa_status": "Waiting on the vendor to call back about the circuit",
        "vendor_status": "Awaiting Info",
        "created_at": now,
        "updated_at": now,
        **values,
    }
    with store.tx() as c:
        return repo.insert_link(c, **row)


class TestVersionAndCompletion:
    def test_version_option_and_command_print_the_version(self):
        """`ticketbridge --version` and `ticketbridge version` print the same version."""
        for args in (["--version"], ["-V"], ["version"]):
            result = invoke(args)
            assert 0 == result.exit_code, result.output
            assert f"{__version__}\n" == result.output

    def test_show_completion_prints_a_bash_script(self):
        """`--show-completion bash` prints the script bash sources to complete commands."""
        result = invoke(["--show-completion", "bash"])
        assert 0 == result.exit_code, result.output
        assert "_TICKETBRIDGE_COMPLETE=complete_bash" in result.output
        assert "complete -o default -F _ticketbridge_completion ticketbridge" in result.output

    def test_completion_offers_the_enum_values(self):
        """Completion of `links list --state` offers the states (the Enum drives it)."""
        result = CliRunner().invoke(
            app,
            [],
            env={
                "_TICKETBRIDGE_COMPLETE": "complete_bash",
                "COMP_WORDS": "ticketbridge links list --state ",
                "COMP_CWORD": "4",
            },
            prog_name="ticketbridge",
        )
        assert {"watching", "creating", "open", "closed"} <= set(result.output.split())


class TestMissingConfig:
    def test_default_path_is_named_with_how_to_point_at_another(self, tmp_path, monkeypatch):
        """No --config, no variable, no file at the default: the error names the file and
        both ways to point at one."""
        monkeypatch.chdir(tmp_path)
        result = invoke(["links", "list"], env={**PIPE, "TICKETBRIDGE_CONFIG": None})
        assert 2 == result.exit_code
        out = words(result.output)
        assert "cannot read configuration file config/ticketbridge.yaml: no such file" in out
        assert f"(the default path, under {tmp_path})" in out
        assert "--config PATH or TICKETBRIDGE_CONFIG=PATH" in out

    def test_path_from_the_variable_says_so(self, tmp_path):
        """A path from TICKETBRIDGE_CONFIG that does not exist blames the variable."""
        missing = tmp_path / "gone.yaml"
        result = invoke(["outbox", "list"], env={**PIPE, "TICKETBRIDGE_CONFIG": str(missing)})
        assert 2 == result.exit_code
        out = words(result.output)
        assert f"{missing}: no such file (the path comes from TICKETBRIDGE_CONFIG)" in out
        assert "fix TICKETBRIDGE_CONFIG or pass --config PATH" in out

    def test_a_directory_is_not_a_config_file(self, tmp_path):
        result = invoke(["sla", "report", "--config", str(tmp_path)])
        assert 2 == result.exit_code
        assert f"{tmp_path}: it is a directory" in words(result.output)

    def test_check_config_json_reports_the_missing_file_as_a_problem(self, tmp_path):
        """For scripts the missing file is one problem row, exit 2."""
        missing = tmp_path / "nope.yaml"
        result = invoke(["check-config", str(missing), "--format", "json"])
        assert 2 == result.exit_code
        [problem] = json.loads(result.stdout)
        assert str(missing) == problem["where"]
        assert "no such file" in problem["message"]


class TestCheckConfigRows:
    def test_problems_as_json_rows(self, tmp_path):
        """check-config --format json: every problem a row of where, message and hint."""
        path = tmp_path / "tb.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
                    "engine": {"overlapp": "5s"},
                    "systems": {"psa": {"kind": "fakez", "base_url": "http://psa.invalid"}},
                }
            )
        )
        result = invoke(["check-config", str(path), "-f", "json"])
        assert 2 == result.exit_code
        rows = json.loads(result.stdout)
        assert {"where", "message", "hint"} == set(rows[0])
        by_where = {r["where"]: r for r in rows}
        assert "did you mean `overlap`?" in by_where["engine.overlapp"]["message"]
        assert "one of:" in by_where["systems.psa.kind"]["hint"]

    def test_a_sound_file_is_an_empty_list(self, tmp_path, store):
        path = write_config(tmp_path, store)
        result = invoke(["check-config", str(path), "-f", "json"])
        assert 0 == result.exit_code, result.output
        assert [] == json.loads(result.stdout)


class TestLinksList:
    def test_piped_output_keeps_long_ids_whole(self, tmp_path, store):
        """Piped (CliRunner's stdout is no terminal) the table is as wide as its rows."""
        add_link(store, LONG_PSA, LONG_VENDOR)
        path = write_config(tmp_path, store)
        result = invoke(["links", "list", "--config", str(path)])
        assert 0 == result.exit_code, result.output
        row = next(line for line in result.output.splitlines() if LONG_PSA in line)
        assert LONG_VENDOR in row
        assert "Waiting on the vendor to call back about the circuit" in row

    def test_60_column_terminal_folds_text_not_ids(self, tmp_path, store):
        """COLUMNS=60 in a terminal: status text folds, the ticket ids stay whole."""
        add_link(store, "T-0000000042", "INC0010042")
        path = write_config(tmp_path, store)
        result = invoke(["links", "list", "--config", str(path)], env=TERMINAL_60)
        assert 0 == result.exit_code, result.output
        lines = [ANSI.sub("", line) for line in result.output.splitlines()]
        assert all(cell_len(line) <= 60 for line in lines), lines
        assert 1 == sum("T-0000000042" in line for line in lines)
        assert 1 == sum("INC0010042" in line for line in lines)
        status = "Waiting on the vendor to call back about the circuit"
        assert not any(status in line for line in lines)
        folded = " ".join(
            line[15:].strip() for line in lines if line[:15].strip() in ("", "PSA status")
        )
        assert status in " ".join(folded.split())

    @pytest.mark.parametrize("fmt", ["json", "csv"])
    def test_scripts_get_every_field(self, tmp_path, store, fmt):
        link_id = add_link(store, LONG_PSA, LONG_VENDOR, psa_number="1042")
        path = write_config(tmp_path, store)
        result = invoke(["links", "list", "-c", str(path), "--format", fmt])
        assert 0 == result.exit_code, result.output
        if fmt == "json":
            rows = json.loads(result.stdout)
        else:
            rows = list(csv.DictReader(io.StringIO(result.stdout)))
        [row] = rows
        assert str(link_id) == str(row["link"])
        assert ("1042", LONG_PSA) == (row["psa_ticket"], row["psa_ticket_id"])
        assert LONG_VENDOR == row["vendor_ticket_id"]

    def test_unknown_connection_names_the_configured_ones(self, tmp_path, store):
        """--connection with a name no connection has is an error, not an empty table."""
        add_link(store, "T1", "V1")
        path = write_config(tmp_path, store)
        result = invoke(["links", "list", "-c", str(path), "--connection", "mian"])
        assert 2 == result.exit_code
        out = words(result.output)
        assert "--connection 'mian' is not a configured connection" in out
        assert "did you mean 'main'?" in out
        assert "(connections: main)" in out
        ok = invoke(["links", "list", "-c", str(path), "--connection", "main", "-f", "json"])
        assert ["T1"] == [r["psa_ticket"] for r in json.loads(ok.stdout)]

    def test_unknown_state_names_the_allowed_ones(self, tmp_path, store):
        path = write_config(tmp_path, store)
        result = invoke(["links", "list", "-c", str(path), "--state", "opne"])
        assert 2 == result.exit_code
        assert "'watching', 'creating', 'open', 'closed'" in words(result.output)


class TestOutboxChanges:
    def _rows(self, store: Store) -> tuple[int, int]:
        """A dead row and a cancelled row of one link."""
        link_id = add_link(store, "T1", "V1")
        now = utcnow()
        with store.tx() as c:
            for key in ("dead-1", "cancel-1"):
                repo.enqueue(
                    c,
                    link_id=link_id,
                    target_system="vendor",
                    operation="add_note",
                    key=key,
                    payload={"text": key},
                    now=now,
                )
            rows = {r.key: r.id for r in repo.outbox_rows(c)}
            repo.outbox_cancel(c, rows["cancel-1"])
            claimed = repo.claim_outbox(
                c, now, limit=5, lease=timedelta(minutes=2), postgres=not store.is_sqlite
            )
            [dead] = [r for r in claimed if r.key == "dead-1"]
            repo.outbox_dead(c, dead.id, error="PermanentError: no", token=dead.claim_token)
        return rows["dead-1"], rows["cancel-1"]

    @pytest.mark.parametrize("action", ["retry", "cancel"])
    def test_a_missing_row_is_not_found(self, tmp_path, store, action):
        """`outbox retry 999` / `cancel 999`: "not found", exit 1."""
        path = write_config(tmp_path, store)
        result = invoke(["outbox", action, "999", "-c", str(path)])
        assert 1 == result.exit_code
        assert words(result.output).startswith("outbox row 999: not found")

    def test_a_row_in_the_wrong_state_says_its_state(self, tmp_path, store):
        """A cancelled row cannot be retried or cancelled again: the message says why."""
        _, cancelled = self._rows(store)
        path = write_config(tmp_path, store)
        retry = invoke(["outbox", "retry", str(cancelled), "-c", str(path)])
        assert 1 == retry.exit_code
        assert f"outbox row {cancelled} is cancelled: only dead rows can be retried" == words(
            retry.output
        )
        cancel = invoke(["outbox", "cancel", str(cancelled), "-c", str(path)])
        assert 1 == cancel.exit_code
        assert (
            f"outbox row {cancelled} is cancelled: only dead or pending rows can be cancelled"
            == words(cancel.output)
        )

    def test_a_dead_row_is_retried(self, tmp_path, store):
        dead, _ = self._rows(store)
        path = write_config(tmp_path, store)
        result = invoke(["outbox", "retry", str(dead), "-c", str(path)])
        assert 0 == result.exit_code, result.output
        assert f"outbox row {dead}: retry done" == words(result.output)
        with store.tx() as c:
            assert "pending" == repo.outbox_row(c, dead).state  # type: ignore[union-attr]
        listed = invoke(["outbox", "list", "-c", str(path), "-f", "json"])
        assert [(dead, "pending")] == [(r["id"], r["state"]) for r in json.loads(listed.stdout)]


@pytest.mark.anyio
class TestSlaReport:
    async def _history(self, store: Store, tmp_path: Path) -> Path:
        """One linked ticket of ACME with an SLA clock, opened an hour ago."""
        h = Harness.build(store, sla_config=SLA, clock=FakeClock(utcnow() - timedelta(hours=1)))
        h.psa_ticket()
        await h.settle()
        return write_config(tmp_path, store, sla=SLA)

    async def test_table_json_and_csv(self, store, tmp_path):
        path = await self._history(store, tmp_path)
        table = invoke(["sla", "report", "-c", str(path)])
        assert 0 == table.exit_code, table.output
        assert "Supplier scorecard" in table.output
        row = next(line for line in table.output.splitlines() if "│ 1 " in line)
        assert row.startswith("│ vendor ")
        data = json.loads(invoke(["sla", "report", "-c", str(path), "-f", "json"]).stdout)
        assert {("vendor", "1", 1)} <= {
            (r["vendor"], r["priority"], r["tickets"]) for r in data["rows"]
        }
        lines = invoke(["sla", "report", "-c", str(path), "-f", "csv"]).stdout.splitlines()
        assert lines[0].startswith("vendor,priority,tickets")

    async def test_unknown_vendor_names_the_vendor_systems(self, store, tmp_path):
        path = await self._history(store, tmp_path)
        result = invoke(["sla", "report", "-c", str(path), "--vendor", "vendr"])
        assert 2 == result.exit_code
        assert (
            "--vendor 'vendr' is not a vendor system of any connection — did you mean "
            "'vendor'? (vendor systems: vendor)"
        ) == words(result.output)

    async def test_unknown_client_names_the_clients_seen(self, store, tmp_path):
        """A client without linked tickets in the window is an error naming those with."""
        path = await self._history(store, tmp_path)
        result = invoke(["sla", "report", "-c", str(path), "--client", "acme"])
        assert 2 == result.exit_code
        out = words(result.output)
        assert "--client 'acme': no linked ticket with an SLA clock of that client since" in out
        assert "did you mean 'ACME'? (clients with some then: ACME)" in out
        ok = invoke(["sla", "report", "-c", str(path), "--client", "ACME", "-f", "json"])
        assert 0 == ok.exit_code, ok.output
        assert json.loads(ok.stdout)["rows"]

    async def test_bad_format_and_period_are_refused(self, store, tmp_path):
        path = await self._history(store, tmp_path)
        fmt = invoke(["sla", "report", "-c", str(path), "--format", "xml"])
        assert 2 == fmt.exit_code
        assert "'table', 'json', 'csv', 'html'" in words(fmt.output)
        since = invoke(["sla", "report", "-c", str(path), "--since", "soon"])
        assert 2 == since.exit_code
        assert "--since:" in since.output
