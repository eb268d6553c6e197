"""Escalation rules wired into the engine: every action type acts, timers survive restarts."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.harness import SLA, Harness
from ticketbridge.clock import FakeClock
from ticketbridge.domain import Visibility
from ticketbridge.store import Store, repo
from ticketbridge.store.tables import lessons_learned, rule_states

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

RULES = {
    "timezone": "UTC",
    "tiers": [
        {"name": "Tier 1", "queue": "Service Desk"},
        {"name": "Tier 2", "queue": "Vendor Escalations", "assignee": "adavis"},
    ],
    "contacts": {
        "vendors": {"vendor": {"escalation": ["noc@vendor.example"]}},
        "people": {"manager": {"email": ["manager@msp.example"]}},
    },
    "rules": [
        {
            "name": "tier-2-after-30m",
            "when": {"queue": "Service Desk", "priority": "P1", "age_over": "30m"},
            "actions": [{"type": "move_psa_ticket", "to_tier": "Tier 2", "status": "In Progress"}],
        },
        {
            "name": "ack-breach",
            "when": {
                "vendor_linked": True,
                "acknowledged": False,
                "sla": {"metric": "acknowledgment", "breached": True},
            },
            "stop_when": ["acknowledged", "resolved"],
            "chain": [
                {
                    "actions": [
                        {"type": "set_vendor_priority", "priority": "1"},
                        {"type": "set_vendor_field", "field": "escalation", "value": "2"},
                        {
                            "type": "vendor_note",
                            "visibility": "public",
                            "template": "ESCALATION for {{ vendor.number }}: please acknowledge.",
                        },
                        {
                            "type": "email_vendor",
                            "to": "escalation",
                            "subject": "Escalation {{ vendor.number }}",
                            "body": "Please act now.",
                        },
                    ]
                },
                {
                    "after": "30m",
                    "repeat": 2,
                    "every": "30m",
                    "actions": [
                        {
                            "type": "notify",
                            "channel": "email",
                            "to": "manager",
                            "subject": "Still no acknowledgment",
                            "template": "{{ vendor.number }} is still not acknowledged.",
                        },
                    ],
                },
            ],
        },
        {
            "name": "client-updates",
            "when": {"priority": "P1", "vendor_linked": True},
            "stop_when": ["resolved"],
            "chain": [{"actions": [{"type": "client_update", "every": "60m"}]}],
        },
        {
            "name": "lessons",
            "when": {"closed": True, "any": [{"breached": True}, {"escalated": True}]},
            "stop_when": [],
            "actions": [{"type": "lessons_learned"}],
        },
    ],
}


class Smtp:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 collecting messages."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.Message] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    yield server
    server.stop()


def notify_via(smtp: Smtp) -> dict[str, Any]:
    """``notify`` settings sending e-mail through the test's SMTP server."""
    return {
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "starttls": False,
            "from_address": "bridge@msp.example",
            "local_hostname": "bridge.test",
        }
    }


def build(
    store: Store,
    tmp_path: Path,
    smtp: Smtp,
    clock: FakeClock | None = None,
    rules: dict[str, Any] | None = None,
) -> Harness:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.yaml").write_text(yaml.safe_dump(rules or RULES))
    return Harness.build(
        store,
        sla_config=SLA,
        clock=clock,
        routing={"queues": ["Vendor Escalations", "Service Desk"]},
        extra={
            "rules": {"directory": str(directory), "tick": "1m"},
            "notify": notify_via(smtp),
        },
    )


async def run(h: Harness, rounds: int = 6) -> None:
    for _ in range(rounds):
        await h.engine.sla_sweep()
        await h.engine.rules_sweep()
        await h.engine.rules_pass()
        await h.settle(rounds=3)


class TestActions:
    async def test_tier_move_after_the_prescribed_time(self, store, tmp_path, smtp):
        """A P1 still on the Tier 1 board after 30 minutes moves to Tier 2's board and owner."""
        h = build(store, tmp_path, smtp)
        t = h.psa_ticket(queue="Service Desk")
        await run(h, 2)
        assert h.psa.world.tickets[t.ref.id].queue == "Service Desk"
        h.clock.advance(timedelta(minutes=31))
        await run(h, 2)
        moved = h.psa.world.tickets[t.ref.id]
        assert (moved.queue, moved.status, moved.assignee) == (
            "Vendor Escalations",
            "In Progress",
            "adavis",
        )

    async def test_facts_read_snapshots_stored_in_the_psa_words(self, store, tmp_path, smtp):
        """A link snapshot stored before the neutral fields (board/team/owner) still gives
        the queue, group and assignee, so rules keep matching across an upgrade."""
        h = build(store, tmp_path, smtp)
        h.psa_ticket(queue="Service Desk")
        await run(h, 1)
        link = h.link()
        old = {"number": "1", "board": "Service Desk", "team": "Tier 2", "owner": "adavis"}
        with store.tx() as c:
            repo.update_link(c, link.id, psa_snapshot=old)
        link = h.link()
        with store.tx() as c:
            psa = h.engine.rules.facts(c, link, h.clock.now()).psa
        assert ("Service Desk", "Tier 2", "adavis") == (psa.queue, psa.group, psa.assignee)

    async def test_breach_escalates_at_the_vendor_and_emails(self, store, tmp_path, smtp):
        """An acknowledgment breach raises the vendor priority and escalation field, posts a
        public escalation note, e-mails the vendor's escalation desk, then chases the manager
        every 30 minutes, twice more, and stops when the vendor acknowledges."""
        h = build(store, tmp_path, smtp)
        t = h.psa_ticket(priority="P3")
        await run(h, 2)
        vid = h.link().vendor_ticket_id
        h.clock.advance(timedelta(hours=2, minutes=1))  # P3: 2h to acknowledge (24x7)
        await run(h, 3)
        vendor = h.vendor.world.tickets[vid]
        assert vendor.priority == "1"
        assert vendor.fields.get("escalation") == "2"
        notes = [n.text for n in h.vendor.world.notes[vid]]
        assert sum("ESCALATION for" in n for n in notes) == 1
        await asyncio.sleep(0.2)
        subjects = [m["Subject"] for m in smtp.messages]
        assert subjects.count(f"Escalation {vendor.ref.number}") == 1
        assert smtp.messages[0]["To"] == "noc@vendor.example"
        h.clock.advance(timedelta(minutes=31))
        await run(h, 2)
        h.clock.advance(timedelta(minutes=30))
        await run(h, 2)
        await asyncio.sleep(0.2)
        assert [m["To"] for m in smtp.messages].count("manager@msp.example") == 2
        h.vendor_note(vid, "We are on it.", Visibility.PUBLIC)  # acknowledged: chain stops
        await run(h, 2)
        h.clock.advance(timedelta(minutes=30))
        await run(h, 2)
        await asyncio.sleep(0.2)
        assert [m["To"] for m in smtp.messages].count("manager@msp.example") == 2
        assert t.ref.id in h.psa.world.tickets

    async def test_only_escalation_runs_count_as_escalations(self, store, tmp_path, smtp):
        """Of a P1's rule runs (escalation at the vendor, manager chases, client updates)
        only the run that escalated is recorded and reported as an escalation."""
        from ticketbridge.report import collect

        h = build(store, tmp_path, smtp)
        h.psa_ticket()  # P1: 15 minutes to acknowledge; client updates every hour
        await run(h, 2)
        h.clock.advance(timedelta(minutes=16))  # breached: the vendor is escalated
        await run(h, 2)
        for _ in range(2):  # two manager chases, client updates on the hour
            h.clock.advance(timedelta(minutes=31))
            await run(h, 2)
        link = h.link()
        with store.tx() as c:
            kinds = [e.kind for e in repo.link_events(c, link.id)]
            steps = [
                (e.detail["rule"], e.detail["step"])
                for e in repo.link_events(c, link.id)
                if e.kind == "escalation_step"
            ]
        # ack-breach step 0 (escalation), its two chases, and two client updates
        assert sorted(steps) == [
            ("ack-breach", 0),
            ("ack-breach", 1),
            ("ack-breach", 1),
            ("client-updates", 0),
            ("client-updates", 0),
        ]
        assert kinds.count("rule_escalated") == 1
        now = h.clock.now()
        report = collect(store, h.engine.config, since=now - timedelta(days=1), now=now)
        row = next(r for r in report.rows if r.priority == "1")
        assert row.escalations == 1

    async def test_client_updates_on_a_cadence(self, store, tmp_path, smtp):
        """A P1 gets a client-visible PSA note summarising the vendor's latest public progress,
        then one every 60 minutes."""
        h = build(store, tmp_path, smtp)
        t = h.psa_ticket()
        await run(h, 2)
        vid = h.link().vendor_ticket_id
        h.vendor_note(vid, "Engineer dispatched to the exchange.", Visibility.PUBLIC)
        await run(h, 2)
        h.clock.advance(timedelta(minutes=61))
        await run(h, 2)
        public = [
            n
            for n in h.psa.world.notes[t.ref.id]
            if n.visibility is Visibility.PUBLIC and n.author == "ticketbridge"
        ]
        assert len(public) == 2
        assert "Engineer dispatched to the exchange." in public[-1].text

    async def test_lessons_learned_when_closed_after_breach(self, store, tmp_path, smtp):
        """Closing a linked ticket after a breach opens one lessons-learned record."""
        h = build(store, tmp_path, smtp)
        t = h.psa_ticket()
        await run(h, 2)
        h.clock.advance(timedelta(minutes=20))  # P1 acknowledgment (15m) breached
        await run(h, 2)
        h.psa.world.change(t.ref.id, status="Closed")
        await run(h, 3)
        await run(h, 2)
        with store.tx() as c:
            rows = c.execute(sa.select(lessons_learned)).all()
        assert len(rows) == 1
        assert "Lessons learned" in rows[0].summary


class _Hooks:
    """A local HTTP receiver for chat webhooks (Slack, Teams, generic), on 127.0.0.1."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TestChatNotifications:
    async def test_slack_and_webhook_targets_from_secret_references(
        self, store, tmp_path, smtp, monkeypatch
    ):
        """A notify action reaches a Slack incoming webhook and a generic webhook whose URLs
        are secret references read at send time; each message is sent once."""
        hooks = _Hooks()
        try:
            monkeypatch.setenv("TB_TEST_SLACK_URL", f"{hooks.url}/services/T0/B0/xyz")
            monkeypatch.setenv("TB_TEST_HOOK_URL", f"{hooks.url}/hook")
            rules = {
                "contacts": {
                    "people": {
                        "ops": {
                            "slack": {"env": "TB_TEST_SLACK_URL"},
                            "webhook": {"env": "TB_TEST_HOOK_URL"},
                        }
                    }
                },
                "rules": [
                    {
                        "name": "tell-ops",
                        "when": {"vendor_linked": True},
                        "actions": [
                            {
                                "type": "notify",
                                "channel": "slack",
                                "to": "ops",
                                "template": "{{ vendor.number }} opened for {{ ticket.summary }}",
                            },
                            {
                                "type": "notify",
                                "channel": "webhook",
                                "to": "ops",
                                "template": "linked {{ vendor.number }}",
                            },
                        ],
                    }
                ],
            }
            h = build(store, tmp_path, smtp, rules=rules)
            h.psa_ticket()
            await run(h, 3)
            await asyncio.sleep(0.3)
            number = h.link().vendor_number
            paths = [p for p, _ in hooks.received]
            assert sorted(paths) == ["/hook", "/services/T0/B0/xyz"]
            slack = next(b for p, b in hooks.received if p.startswith("/services"))
            assert f"{number} opened for Internet down" in slack["text"]
            hook = next(b for p, b in hooks.received if p == "/hook")
            assert hook["text"] == f"linked {number}"
        finally:
            hooks.stop()


class TestDurableTimers:
    async def test_time_alone_fires_on_the_links_own_timer(self, store, tmp_path, smtp):
        """A condition that only time makes true (ticket age) is scheduled as the link's
        timer: the timer sweep fires it without any periodic full pass."""
        only_tiers = {**RULES, "rules": [RULES["rules"][0]]}
        h = build(store, tmp_path, smtp, rules=only_tiers)
        t = h.psa_ticket(queue="Service Desk")
        await h.settle(rounds=3)
        with store.tx() as c:
            due = c.execute(sa.select(rule_states.c.next_due_at)).scalar_one()
        assert due is not None
        assert timedelta(minutes=29) < due - t.created_at <= timedelta(minutes=31)
        h.clock.set(due + timedelta(seconds=1))
        assert await h.engine.rules_sweep() == 1
        await h.settle(rounds=3)
        assert h.psa.world.tickets[t.ref.id].queue == "Vendor Escalations"

    async def test_restart_mid_chain_runs_overdue_steps_once_in_order(self, store, tmp_path, smtp):
        """A daemon down through all three chase runs runs each once, in order, when it is
        back; a second daemon on the same store runs nothing again."""
        clock = FakeClock()
        h = build(store, tmp_path, smtp, clock=clock)
        h.psa_ticket(priority="P3")
        await run(h, 2)
        clock.advance(timedelta(hours=2, minutes=1))
        await run(h, 2)
        await asyncio.sleep(0.2)
        sent_before = len(smtp.messages)
        clock.advance(timedelta(hours=2))  # "down": both chase steps are overdue
        again = build(store, tmp_path, smtp, clock=clock)
        again.engine.adapters.update({"psa": h.psa, "vendor": h.vendor})
        again.psa, again.vendor = h.psa, h.vendor
        await again.engine.rules_sweep()
        await again.settle(rounds=4)
        third = build(store, tmp_path, smtp, clock=clock)
        third.engine.adapters.update({"psa": h.psa, "vendor": h.vendor})
        third.psa, third.vendor = h.psa, h.vendor
        await third.engine.rules_sweep()
        await third.engine.rules_pass()
        await third.settle(rounds=4)
        await asyncio.sleep(0.3)
        chases = [m for m in smtp.messages[sent_before:] if m["To"] == "manager@msp.example"]
        assert len(chases) == 3
        link_id = h.link().id
        with store.tx() as c:
            steps = [
                e.detail
                for e in repo.link_events(c, link_id)
                if e.kind == "escalation_step" and e.detail["rule"] == "ack-breach"
            ]
        assert [(s["step"], s["repetition"]) for s in steps] == [(0, 0), (1, 0), (1, 1), (1, 2)]

    async def test_editing_a_rule_does_not_disturb_a_running_chain(self, store, tmp_path, smtp):
        """A chain keeps the snapshot it started with when the rule file changes."""
        clock = FakeClock()
        h = build(store, tmp_path, smtp, clock=clock)
        h.psa_ticket(priority="P3")
        await run(h, 2)
        clock.advance(timedelta(hours=2, minutes=1))
        await run(h, 2)
        edited = yaml.safe_load(yaml.safe_dump(RULES))
        edited["rules"][1]["chain"][1]["actions"][0]["subject"] = "EDITED"
        again = build(store, tmp_path, smtp, clock=clock, rules=edited)
        again.engine.adapters.update({"psa": h.psa, "vendor": h.vendor})
        again.psa, again.vendor = h.psa, h.vendor
        clock.advance(timedelta(minutes=31))
        await again.engine.rules_sweep()
        await again.settle(rounds=4)
        await asyncio.sleep(0.2)
        chase = [m for m in smtp.messages if m["To"] == "manager@msp.example"]
        assert [m["Subject"] for m in chase] == ["Still no acknowledgment"]
        with store.tx() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(rule_states)).scalar() == 1


class TestExplainAndSimulate:
    async def _setup(self, store: Store, tmp_path: Path, smtp: Smtp) -> tuple[Harness, Path]:
        h = build(store, tmp_path, smtp)
        h.psa_ticket(priority="P3")
        await run(h, 2)
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
                    "routing": {"queues": ["Vendor Escalations", "Service Desk"]},
                    "accounts": {"ACME": {"company": "acme-sys-id"}},
                }
            ],
            "sla": SLA,
            "rules": {"directory": "rules"},
            # the rules e-mail: check-config wants the relay they go through
            "notify": {
                "smtp": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "starttls": False,
                    "from_address": "bridge@msp.example",
                }
            },
        }
        path = tmp_path / "tb.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return h, path

    async def test_explain_names_failing_conditions_and_next_run(self, store, tmp_path, smtp):
        """`rules explain` lists every rule, why it does not match, and when the next step of a
        waiting rule would run."""
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        h, path = await self._setup(store, tmp_path, smtp)
        at = (h.clock.now() + timedelta(minutes=5)).isoformat()
        result = CliRunner().invoke(
            app, ["rules", "explain", h.link().psa_ticket_id, "--config", str(path), "--at", at]
        )
        assert result.exit_code == 0, result.output
        for name in ("tier-2-after-30m", "ack-breach", "client-updates", "lessons"):
            assert name in result.output
        assert "acknowledgment" in result.output
        assert "rules match" in result.output

    async def test_simulate_writes_nothing(self, store, tmp_path, smtp):
        """`rules simulate --at` reports what would fire later and leaves the store alone."""
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        h, path = await self._setup(store, tmp_path, smtp)
        with store.tx() as c:
            before = (
                len(repo.outbox_rows(c)),
                c.execute(sa.select(sa.func.count()).select_from(rule_states)).scalar(),
            )
        at = (h.clock.now() + timedelta(hours=3)).isoformat()
        result = CliRunner().invoke(app, ["rules", "simulate", "--config", str(path), "--at", at])
        assert result.exit_code == 0, result.output
        assert "rehearsal at" in result.output
        assert "ack-breach" in result.output
        with store.tx() as c:
            after = (
                len(repo.outbox_rows(c)),
                c.execute(sa.select(sa.func.count()).select_from(rule_states)).scalar(),
            )
        assert before == after


TIERED = {
    "timezone": "UTC",
    "tiers": [
        {"name": "Tier 1", "queue": "Service Desk"},
        {"name": "Tier 2", "queue": "Service Desk", "group": "Tier 2"},
    ],
    "contacts": {"people": {"lead": {"email": ["lead@msp.example"]}}},
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
        }
    ],
}


class TestSimulateCoversWatchedTickets:
    async def test_watched_ticket_shows_its_tier_steps(self, store, tmp_path, smtp):
        """A ticket only watched for the tier procedure (no vendor ticket yet) is rehearsed
        by `rules simulate`, as `rules explain` already covers it."""
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        directory = tmp_path / "rules"
        directory.mkdir()
        (directory / "rules.yaml").write_text(yaml.safe_dump(TIERED))
        routing = {"queues": ["Vendor Escalations"], "watch_queues": ["Service Desk"]}
        h = Harness.build(
            store, sla_config=SLA, routing=routing, extra={"rules": {"directory": str(directory)}}
        )
        h.psa_ticket("Printer jammed", queue="Service Desk", priority="P3")
        await run(h, 1)
        link = h.link()
        assert (link.state, link.vendor_ticket_id) == ("watching", None)
        cfg = {
            "store": {"url": store.url.render_as_string(hide_password=False)},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [{"name": "main", "psa": "psa", "vendor": "vendor", "routing": routing}],
            "sla": SLA,
            "rules": {"directory": str(directory)},
        }
        path = tmp_path / "tb.yaml"
        path.write_text(yaml.safe_dump(cfg))
        at = (h.clock.now() + timedelta(hours=1)).isoformat()
        result = CliRunner().invoke(app, ["rules", "simulate", "--config", str(path), "--at", at])
        assert result.exit_code == 0, result.output
        assert "over 1 link(s)" in result.output
        assert f"link {link.id}: matches tiered-escalation" in result.output
        assert "move PSA ticket: tier 'Tier 2'" in result.output
        # and `rules explain` sees the same ticket
        explained = CliRunner().invoke(
            app, ["rules", "explain", link.psa_ticket_id, "--config", str(path), "--at", at]
        )
        assert explained.exit_code == 0, explained.output
        assert "rule tiered-escalation [" in explained.output


class TestClientsSeeNames:
    async def test_client_visible_text_names_the_vendor_not_its_key(self, store, tmp_path, smtp):
        """Client updates (the default template and a custom one using vendor.system), SLA
        notes and mirrored notes read the vendor's display name, never its config key."""
        rules = {
            **RULES,
            "rules": [
                *RULES["rules"],
                {
                    "name": "working-with",
                    "when": {"priority": "P1", "vendor_linked": True},
                    "actions": [
                        {
                            "type": "client_update",
                            "template": "We are working with {{ vendor.system }} "
                            "({{ vendor.system_key }}) from {{ ticket.system }}.",
                        }
                    ],
                },
            ],
        }
        directory = tmp_path / "rules"
        directory.mkdir()
        (directory / "rules.yaml").write_text(yaml.safe_dump(rules))
        systems = {
            "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
            "vendor": {
                "kind": "fake",
                "base_url": "http://vendor.invalid",
                "display_name": "Acme ServiceNow",
            },
        }
        h = Harness.build(
            store,
            sla_config=SLA,
            routing={"queues": ["Vendor Escalations", "Service Desk"]},
            extra={
                "systems": systems,
                "rules": {"directory": str(directory)},
                "notify": notify_via(smtp),
            },
        )
        t = h.psa_ticket()
        await run(h, 2)
        vid = h.link().vendor_ticket_id
        h.vendor_note(vid, "Engineer dispatched.", Visibility.PUBLIC)
        h.clock.advance(timedelta(minutes=20))  # the 15-minute acknowledgment is breached
        await run(h, 3)
        ours = [n.text for n in h.psa.world.notes[t.ref.id] if n.author == "ticketbridge"]
        text = "\n".join(ours)
        # the default client update
        assert 'Status update on "Internet down" (Acme ServiceNow ticket' in text, text
        # a custom template: the name, the key only where asked for, and the PSA's product name
        assert "We are working with Acme ServiceNow (vendor) from Fake." in text, text
        # the mirrored vendor note's header
        assert "[Acme ServiceNow " in text, text
        # the SLA notes
        assert "Supplier SLA at risk: Acme ServiceNow " in text, text
        assert "working with vendor" not in text
        assert "(vendor ticket" not in text
