"""One ticket's timeline and its post-incident review, over the engine on a fake clock.

The incident is known to the second: the vendor's ticket goes on hold (the MSP's move) for
ten minutes, its 15-minute acknowledgment target is breached and escalated, it acknowledges,
resolves, and the engineer closes the PSA ticket half an hour later.  The review's times and
durations are asserted against those instants, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
import yaml
from typer.testing import CliRunner

from tests.conftest import _pg_schema_url
from tests.harness import SLA, Harness
from ticketbridge.cli import app
from ticketbridge.domain import StatusClass, Visibility
from ticketbridge.incident_review import build_review, format_duration, policy_lookup, render
from ticketbridge.store import Store
from ticketbridge.store.timeline import list_lessons
from ticketbridge.timeline import build_timeline, find_links

pytestmark = [pytest.mark.integration]

RULES = {
    "timezone": "UTC",
    "rules": [
        {
            "name": "vendor-ack-breach",
            "when": {
                "vendor_linked": True,
                "acknowledged": False,
                "sla": {"metric": "acknowledgment", "breached": True},
            },
            "stop_when": ["acknowledged", "resolved"],
            "actions": [{"type": "set_vendor_field", "field": "escalation", "value": "2"}],
        },
        {
            "name": "lessons-learned",
            "when": {"closed": True, "any": [{"breached": True}, {"escalated": True}]},
            "stop_when": [],
            "actions": [{"type": "lessons_learned"}],
        },
    ],
}


def build(store: Any, tmp_path: Path) -> Harness:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.yaml").write_text(yaml.safe_dump(RULES))
    return Harness.build(
        store, sla_config=SLA, extra={"rules": {"directory": str(directory), "tick": "1m"}}
    )


async def run(h: Harness, rounds: int = 2) -> None:
    for _ in range(rounds):
        await h.engine.sla_sweep()
        await h.engine.rules_sweep()
        await h.settle(rounds=4)


@dataclass
class Incident:
    h: Harness
    psa_id: str
    vendor_id: str
    hold_at: datetime
    resume_at: datetime
    ack_at: datetime
    resolved_at: datetime
    closed_at: datetime
    #: the review notes in the PSA right after closing, and after the closed ticket was
    #: read and evaluated again
    review_notes: list[Any] = field(default_factory=list)
    review_notes_later: list[Any] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    tmp: Path = Path()


async def play(store: Any, tmp_path: Path) -> Incident:
    h = build(store, tmp_path)
    t = h.psa_ticket("Internet down <script>alert(1)</script>")
    await run(h)
    vid = h.link().vendor_ticket_id
    h.clock.advance(timedelta(minutes=5))
    hold_at = h.clock.now()
    h.vendor.world.change(vid, status="On Hold", status_class=StatusClass.WAITING_ON_CUSTOMER)
    await run(h)
    h.clock.set(hold_at + timedelta(minutes=10))
    resume_at = h.clock.now()
    h.vendor.world.change(vid, status="In Progress", status_class=StatusClass.WORKING)
    await run(h)
    h.clock.advance(timedelta(minutes=12))  # past the 15 vendor minutes: breached
    await run(h, 3)
    ack_at = h.clock.now()
    h.vendor_note(vid, "Line test shows a fault at the exchange.", Visibility.PUBLIC)
    await run(h)
    h.clock.advance(timedelta(minutes=20))
    resolved_at = h.clock.now()
    h.vendor.world.change(vid, status="Resolved", status_class=StatusClass.RESOLVED)
    await run(h)
    h.clock.set(resolved_at + timedelta(minutes=30))
    closed_at = h.clock.now()
    h.psa.world.change(t.ref.id, status="Closed", status_class=StatusClass.CLOSED)
    await run(h, 3)
    i = Incident(h, t.ref.id, vid, hold_at, resume_at, ack_at, resolved_at, closed_at)
    i.review_notes = _reviews_in_psa(i)
    h.clock.advance(timedelta(minutes=5))
    h.psa.world.change(t.ref.id, summary="Internet down (closed)")
    await run(h, 2)
    i.review_notes_later = _reviews_in_psa(i)
    for adapter in (h.psa, h.vendor):
        await adapter.aclose()
    return i


def _reviews_in_psa(i: Incident) -> list[Any]:
    return [n for n in i.h.psa.world.notes[i.psa_id] if "Post-incident review" in n.text]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def incident(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Incident]:
    """The incident played once per store engine; the tests read what it left."""
    tmp = tmp_path_factory.mktemp(request.param)
    admin = schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'tb.db'}"
    else:
        base = request.getfixturevalue("pg_url")
        schema = f"tb_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(base)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = _pg_schema_url(base, schema)
    store = Store(url)
    store.upgrade()
    try:
        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            i = asyncio.run(play(store, tmp))
        i.logs, i.tmp = logs, tmp
        yield i
    finally:
        store.close()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def timeline_of(i: Incident) -> list[Any]:
    with i.h.store.tx() as c:
        (link,) = find_links(c, i.psa_id)
        return build_timeline(c, link.id)


class TestTimeline:
    def test_the_incident_in_order_with_every_source(self, incident: Incident):
        """The merged timeline holds, in time order, the link, the vendor ticket, the
        clock's pause and resumption with whose move it was, the breach with its
        investigation, the escalation with its rule, the write and its outcome, the
        vendor's note mirrored as internal, its resolution, the close and the review."""
        i = incident
        entries = timeline_of(i)
        assert [e.at for e in entries] == sorted(e.at for e in entries)
        kinds = [e.kind for e in entries]
        wanted = [
            "link_created",
            "sla_clock_started",
            "sla_clock_paused",
            "sla_clock_resumed",
            "sla_at_risk",
            "sla_breached",
            "rule_escalated",
            "breach_investigation_opened",
            "note_mirrored",
            "sla_acknowledged",
            "sla_resolved",
            "link_closed",
            "lessons_learned_opened",
        ]
        positions = [kinds.index(k) for k in wanted]
        assert positions == sorted(positions), list(zip(wanted, positions, strict=True))
        by_kind = {e.kind: e for e in entries}
        number = i.h.link().vendor_number
        assert by_kind["vendor_ticket_created"].summary == f"vendor ticket {number} opened"
        assert by_kind["sla_clock_paused"].at == i.hold_at
        assert by_kind["sla_clock_paused"].detail["ball"] == "msp"
        assert by_kind["sla_clock_resumed"].at == i.resume_at
        assert by_kind["sla_acknowledged"].at == i.ack_at
        assert by_kind["sla_resolved"].at == i.resolved_at
        assert by_kind["link_closed"].at == i.closed_at
        assert "vendor-ack-breach" in by_kind["rule_escalated"].summary
        note = by_kind["note_mirrored"]
        assert (note.side, note.detail["mirrored_as"]) == ("vendor", "internal")
        writes = [e for e in entries if e.kind == "write_done" and e.side == "vendor"]
        assert any("escalation=2" in e.summary for e in writes)

    def test_the_review_is_written_back_once_as_an_internal_note(self, incident: Incident):
        """Closing the breached ticket queues one internal PSA note holding the review;
        reading and evaluating the closed ticket again queues nothing more."""
        i = incident
        assert 1 == len(i.review_notes)
        assert Visibility.INTERNAL is i.review_notes[0].visibility
        text = i.review_notes[0].text
        assert "Acknowledgment: " in text
        assert "MISSED" in text
        assert [n.id for n in i.review_notes] == [n.id for n in i.review_notes_later]
        rows = [r for r in i.h.outbox() if r.payload.get("text", "").startswith("Post-incident")]
        assert [("done", "add_note", "psa")] == [
            (r.state, r.operation, r.target_system) for r in rows
        ]


class TestReviewDocument:
    def test_times_and_durations_of_the_known_incident(self, incident: Incident):
        """Vendor time to acknowledge excludes the MSP's ten minutes; the ball sat with the
        vendor until it resolved (less the hold) and with the MSP during the hold and the
        half hour of verification; the checklist has an owned, dated action per area."""
        i = incident
        policy = policy_lookup(i.h.engine.config)
        with i.h.store.tx() as c:
            (lesson,) = list_lessons(c)
            review = build_review(c, f"LL-{lesson.id}", now=i.h.clock.now(), policy=policy)
        assert review is not None
        link = i.h.link()
        started = link.created_at  # not the clock's start: read it from the review
        assert review.started_at is not None
        assert review.started_at >= started
        before_hold = i.hold_at - review.started_at
        ack = next(m for m in review.metrics if m.metric == "acknowledgment")
        assert ack.target == timedelta(minutes=15)
        assert ack.elapsed == before_hold + (i.ack_at - i.resume_at)
        assert (ack.met, ack.breaches, ack.stopped_at) == (False, 1, i.ack_at)
        resolution = next(m for m in review.metrics if m.metric == "resolution")
        assert resolution.target == timedelta(hours=4)
        assert resolution.elapsed == before_hold + (i.resolved_at - i.resume_at)
        assert resolution.met is True
        ball = dict(review.ball)
        assert ball["vendor"] == before_hold + (i.resolved_at - i.resume_at)
        assert ball["msp"] == timedelta(minutes=10) + timedelta(minutes=30)
        assert review.closed_link_at == i.closed_at
        assert [a.area for a in review.actions][:1] == ["prevent"]
        assert {a.area for a in review.actions} == {"prevent", "detect", "mitigate"}
        assert all(a.owner and a.due > lesson.opened_at.date() for a in review.actions)
        md = render(review, "md")
        assert f"| Acknowledgment | 15m (calendar) | {format_duration(ack.elapsed)} |" in md
        assert f"| {i.hold_at:%Y-%m-%d %H:%M:%S} UTC | vendor (vendor) |" in md
        assert "supplier SLA clock paused: ball with the MSP" in md
        assert f"- msp: {format_duration(ball['msp'])}" in md
        html = render(review, "html")
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


class TestLogContext:
    def test_events_about_a_ticket_carry_its_number_link_and_rule(self, incident: Incident):
        """Log events emitted while deciding, sweeping clocks, firing rules and writing
        carry the link id and the PSA ticket number; a rule firing names its rule."""
        i = incident
        link = i.h.link()
        number = link.psa_number or link.psa_ticket_id
        about = [e for e in i.logs if e.get("link_id") == link.id]
        assert about, i.logs
        assert all(e.get("psa_ticket") == number for e in about)
        events = {e["event"] for e in about}
        assert {"sla_breached", "rule_fired", "note_mirrored", "ticket_updated"} <= events
        fired = [e for e in about if e["event"] == "rule_fired"]
        assert {"vendor-ack-breach", "lessons-learned"} <= {e["rule"] for e in fired}


class TestReviewsCli:
    def test_list_show_and_close(self, incident: Incident):
        """`reviews list --format json` names both reviews; `show --format html --output`
        writes the document; `close` closes once, then says it is closed; a bad id is
        refused naming the id format."""
        i = incident
        url = i.h.store.url.render_as_string(hide_password=False)
        config = i.tmp / "tb.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": url},
                    "systems": {
                        "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                        "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
                    },
                    "connections": [{"name": "main", "psa": "psa", "vendor": "vendor"}],
                    "sla": SLA,
                }
            )
        )
        runner = CliRunner()
        listed = runner.invoke(app, ["reviews", "list", "-c", str(config), "--format", "json"])
        assert 0 == listed.exit_code, listed.output
        rows = json.loads(listed.stdout)
        assert ["BI-1", "LL-1"] == sorted(r["id"] for r in rows)
        assert {r["state"] for r in rows} == {"open"}
        out = i.tmp / "review.html"
        shown = runner.invoke(
            app, ["reviews", "show", "LL-1", "-c", str(config), "-f", "html", "-o", str(out)]
        )
        assert 0 == shown.exit_code, shown.output
        assert "<h2>Review checklist</h2>" in out.read_text()
        closed = runner.invoke(
            app, ["reviews", "close", "ll-1", "-c", str(config), "--findings", "Vendor NOC"]
        )
        assert 0 == closed.exit_code, closed.output
        again = runner.invoke(app, ["reviews", "close", "LL-1", "-c", str(config)])
        assert (1, "already closed") == (again.exit_code, again.stderr.strip()[-14:])
        bad = runner.invoke(app, ["reviews", "show", "7", "-c", str(config)])
        assert 2 == bad.exit_code
        assert "LL-<n>" in bad.stderr
        with i.h.store.tx() as c:
            (lesson,) = list_lessons(c)
        assert (lesson.state, lesson.findings) == ("closed", "Vendor NOC")
        json_out = runner.invoke(app, ["timeline", i.psa_id, "-c", str(config), "-f", "json"])
        assert 0 == json_out.exit_code, json_out.output
        timeline = json.loads(json_out.stdout)
        closes = [e for e in timeline if e["kind"] == "lessons_learned_closed"]
        assert 1 == len(closes)
        assert closes[0]["detail"]["findings"] == "Vendor NOC"
        assert all(e["psa_ticket"] == i.h.link().psa_number for e in timeline)


class TestDeadLetters:
    @pytest.mark.anyio
    async def test_a_refused_note_shows_dead_with_its_error(self, store: Store):
        """A PSA note the vendor refuses is on the timeline as not mirrored, its write
        dead-lettered, with the vendor's error; the internal note beside it as skipped."""
        from ticketbridge.errors import PermanentError

        h = Harness.build(store, sla_config=SLA)
        t = h.psa_ticket()
        await h.settle()
        h.vendor.fail_next("add_note", PermanentError("note refused by ACL", system="vendor"))
        h.psa_note(t, "Client reports the office is offline.", Visibility.PUBLIC)
        h.psa_note(t, "Internal: be nice.", Visibility.INTERNAL)
        await h.settle()
        link_id = h.link().id
        with store.tx() as c:
            entries = build_timeline(c, link_id)
        dead = [e for e in entries if e.kind == "note_dead"]
        assert 1 == len(dead)
        assert "dead-lettered" in dead[0].summary
        assert "note refused by ACL" in dead[0].detail["write"]["error"]
        letters = [e for e in entries if e.kind == "dead_letter"]
        assert 1 == len(letters)
        assert "note refused by ACL" in letters[0].summary
        skipped = [e for e in entries if e.kind == "note_skipped" and e.side == "psa"]
        assert ["internal"] == [e.detail["reason"] for e in skipped]


class TestPriorityChanges:
    @pytest.mark.anyio
    async def test_a_priority_change_and_the_write_it_caused(self, store: Store):
        """The PSA's priority lowered is on the timeline on the PSA side, followed by the
        write that carried it to the vendor through the priority map."""
        h = Harness.build(store, sla_config=SLA)
        t = h.psa_ticket()
        await h.settle()
        h.clock.advance(timedelta(minutes=3))
        changed_at = h.clock.now()
        h.psa.world.change(t.ref.id, priority="P3")
        await h.settle()
        link_id = h.link().id
        with store.tx() as c:
            entries = build_timeline(c, link_id)
        (change,) = [e for e in entries if e.kind == "priority_changed" and e.side == "psa"]
        assert ("psa", "priority P1 -> P3", changed_at) == (change.side, change.summary, change.at)
        after = entries[entries.index(change) :]
        assert any(e.kind == "write_done" and "priority=3" in e.summary for e in after)
