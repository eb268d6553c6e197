"""Client service closeout against the fake product's simulator (both sides), on SQLite and
PostgreSQL: the open ticket review, closing every vendor ticket, a vendor that refuses, an
interrupted run resumed without a second write, the rules held, a client's return."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Harness
from ticketbridge.closeout import CloseoutError, Closer, Disposition, Outcome, TicketState, review
from ticketbridge.engine import Engine
from ticketbridge.errors import PermanentError, TransientError
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store
from ticketbridge.store import closeout as co_store
from ticketbridge.store.tables import events, rule_states

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CLIENT = "ACME"


def closer(h: Harness, engine: Engine | None = None) -> Closer:
    """A closer on the harness's systems; its sleep moves the fake clock on."""
    engine = engine or h.engine

    async def sleep(seconds: float) -> None:
        h.clock.advance(seconds)

    return Closer(
        engine.config, h.store, engine.adapters, h.clock, engine.dispatch_once, sleep=sleep
    )


async def linked(h: Harness, count: int, client: str = CLIENT) -> list[Any]:
    tickets = [h.psa_ticket(f"Issue {n}", company=client) for n in range(count)]
    await h.settle()
    return tickets


def vendor_ids(h: Harness) -> dict[str, str]:
    """PSA ticket id -> vendor ticket id."""
    with h.store.tx() as c:
        rows = c.execute(sa.text("SELECT psa_ticket_id, vendor_ticket_id FROM links")).all()
    return {str(psa): str(vendor) for psa, vendor in rows if vendor is not None}


def closing_notes(h: Harness, vendor_id: str) -> list[str]:
    return [n.text for n in h.vendor.world.notes[vendor_id] if "ended its service" in n.text]


async def apply(h: Harness, **kwargs: Any) -> Outcome:
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("poll_every", 0)
    kwargs.setdefault("client_name", "Acme Dental")
    return await closer(h).apply(CLIENT, **kwargs)


async def test_review_lists_the_clients_open_tickets_only(store: Store) -> None:
    """The dry run shows each open linked ticket of the client with its vendor ticket and
    status, and nothing of another client; it writes nothing."""
    h = Harness.build(store, accounts={"ACME": {"c": "1"}, "OTHER": {"c": "2"}})
    await linked(h, 3)
    await linked(h, 1, client="OTHER")
    result = review(store, h.engine.adapters, CLIENT)
    assert 3 == len(result.tickets)
    assert {"ACME"} == {t.link.company for t in result.tickets}
    assert all(t.vendor_ticket for t in result.tickets)
    assert result.closeout is None
    rows = [t.as_row() for t in result.tickets]
    assert {"New"} == {r["vendor_status"] for r in rows}
    assert [] == h.outbox("pending")
    with store.tx() as c:
        assert [] == co_store.list_closeouts(c)


async def test_three_linked_tickets_are_closed_out(store: Store) -> None:
    """One ticket named to complete is resolved, the other two cancelled, each with one
    closing note in the vendor's terms; every vendor confirms, so the closeout is done."""
    h = Harness.build(store)
    tickets = await linked(h, 3)
    ids = vendor_ids(h)
    outcome = await apply(h, complete={tickets[0].ref.id})

    assert outcome.done, outcome.closeout.reason
    statuses = {psa: h.vendor.world.tickets[vid].status for psa, vid in ids.items()}
    assert "Resolved" == statuses[tickets[0].ref.id]
    assert ["Canceled", "Canceled"] == [statuses[t.ref.id] for t in tickets[1:]]
    for t in tickets:
        notes = closing_notes(h, ids[t.ref.id])
        assert 1 == len(notes)
        assert "Acme Dental has ended its service" in notes[0]
    assert "please close it" in closing_notes(h, ids[tickets[0].ref.id])[0]
    assert "withdraw" in closing_notes(h, ids[tickets[1].ref.id])[0]
    by_link = {t.link.psa_ticket_id: t.outcome for t in outcome.tickets}
    assert {TicketState.CONFIRMED.value} == {o.state for o in by_link.values() if o}
    assert Disposition.COMPLETE.value == by_link[tickets[0].ref.id].disposition
    assert Disposition.CANCEL.value == by_link[tickets[2].ref.id].disposition
    # every write went through the outbox
    done = Counter(row.operation for row in h.outbox("done") if row.target_system == "vendor")
    assert done["add_note"] >= 3
    assert done["update_ticket"] >= 3


async def test_a_vendor_that_refuses_keeps_the_closeout_open_and_says_why(
    store: Store,
) -> None:
    """The vendor refuses one ticket's cancellation: that ticket is recorded refused with
    the vendor's error, the others are confirmed, and the closeout is not done."""
    h = Harness.build(store)
    tickets = await linked(h, 3)
    ids = vendor_ids(h)
    refused = ids[tickets[1].ref.id]
    # the note goes through; the status write is refused (a permanent error)
    original = h.vendor.update_ticket

    async def refusing(ticket_id: str, change: Any) -> None:
        if ticket_id == refused:
            raise PermanentError("403 ACL: state is read-only", system="vendor")
        await original(ticket_id, change)

    h.vendor.update_ticket = refusing  # type: ignore[method-assign]
    outcome = await apply(h)

    assert not outcome.done
    assert "closing" == outcome.closeout.state
    reason = outcome.closeout.reason or ""
    assert tickets[1].ref.id in reason
    assert "state is read-only" in reason
    states = {t.link.psa_ticket_id: t.outcome.state for t in outcome.tickets if t.outcome}
    assert TicketState.REFUSED.value == states[tickets[1].ref.id]
    assert TicketState.CONFIRMED.value == states[tickets[0].ref.id]
    assert "New" == h.vendor.world.tickets[refused].status
    assert [t.link.psa_ticket_id for t in outcome.still_open] == [tickets[1].ref.id]


async def test_a_status_that_does_not_stick_times_out_as_open(store: Store) -> None:
    """The vendor accepts the closing writes but its ticket reads back open (a workflow
    that reopens it): no confirmation, the ticket is recorded open with its status."""
    h = Harness.build(store)
    tickets = await linked(h, 1)
    vid = vendor_ids(h)[tickets[0].ref.id]
    original = h.vendor.update_ticket

    async def reopening(ticket_id: str, change: Any) -> None:
        await original(ticket_id, change)
        h.vendor.world.change(ticket_id, status="In Progress")

    h.vendor.update_ticket = reopening  # type: ignore[method-assign]
    outcome = await apply(h, timeout=2, poll_every=0.05)
    assert not outcome.done
    row = outcome.tickets[0].outcome
    assert row is not None
    assert TicketState.OPEN.value == row.state
    assert "'In Progress'" in (row.reason or "")
    assert "no confirmation within" in (row.reason or "")
    assert "In Progress" == h.vendor.world.tickets[vid].status


class Interrupted(BaseException):
    """The process stops right after a write reached the vendor, before it was recorded."""


class CrashOnce:
    def __init__(self) -> None:
        self.hit_count = 0

    def hit(self, point: str, operation: str) -> None:
        if point == "after_send" and operation == "add_note" and self.hit_count == 0:
            self.hit_count += 1
            raise Interrupted


async def test_an_interrupted_apply_resumes_without_a_second_write(store: Store) -> None:
    """The first run stops after a closing note reached the vendor but before it was
    recorded; a second run (a new process) continues the same closeout, finds the note
    at the vendor instead of writing it again, and finishes: one note per vendor ticket."""
    h = Harness.build(store)
    tickets = await linked(h, 3)
    ids = vendor_ids(h)
    h.engine.dispatcher.faults = CrashOnce()
    with pytest.raises(Interrupted):
        await apply(h)
    with store.tx() as c:
        first = co_store.latest_closeout(c, CLIENT)
    assert first is not None
    assert "closing" == first.state

    # a new process, after the interrupted write's lease ran out
    h.clock.advance(h.engine.config.engine.write_lease + 1)
    again = Engine(h.engine.config, store, h.engine.adapters, Metrics(), h.clock)
    outcome = await closer(h, again).apply(CLIENT, timeout=30, poll_every=0)

    assert outcome.done, outcome.closeout.reason
    assert first.id == outcome.closeout.id
    for t in tickets:
        assert 1 == len(closing_notes(h, ids[t.ref.id])), t.ref.id
    assert {"Canceled"} == {h.vendor.world.tickets[v].status for v in ids.values()}
    # a third run writes nothing at all
    calls = len(h.vendor.world.calls)
    rows = len(h.outbox())
    outcome = await apply(h)
    assert outcome.done
    assert rows == len(h.outbox())
    writes = [c for c in h.vendor.world.calls[calls:] if c[0] in ("add_note", "update_ticket")]
    assert [] == writes


RULES: dict[str, Any] = {
    "timezone": "UTC",
    "rules": [
        {
            "name": "client-updates",
            "when": {"priority": "P1", "vendor_linked": True},
            "stop_when": ["resolved"],
            "chain": [
                {
                    "after": "10m",
                    "actions": [
                        {
                            "type": "client_update",
                            "every": "10m",
                            "template": "Update for the client",
                        }
                    ],
                }
            ],
        }
    ],
}


async def test_the_clients_chains_and_updates_stop(store: Store, tmp_path: Any) -> None:
    """A running chain of client updates stops at the closeout: its timer is cleared, the
    stop is recorded, an update queued but not sent is cancelled, and no further update is
    queued however much time passes."""
    import yaml

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.yaml").write_text(yaml.safe_dump(RULES))
    h = Harness.build(store, extra={"rules": {"directory": str(rules_dir)}})
    await linked(h, 1)
    h.clock.advance(11 * 60)
    await h.engine.rules_sweep()
    await h.settle()
    updates = lambda: sum(
        "Update for the client" in n.text for ns in h.psa.world.notes.values() for n in ns
    )
    assert updates() >= 1
    before = updates()
    # the next update is queued, not sent yet, when the closeout starts
    h.clock.advance(10 * 60)
    await h.engine.rules_sweep()
    queued = [r.id for r in h.outbox("pending") if r.target_system == "psa"]
    assert queued
    outcome = await apply(h)
    assert outcome.done
    assert set(queued) <= {r.id for r in h.outbox("cancelled")}
    with store.tx() as c:
        due = c.execute(sa.select(rule_states.c.next_due_at)).scalars().all()
        stopped = c.execute(
            sa.select(events.c.detail).where(events.c.kind == "rule_chain_stopped")
        ).scalars()
        reasons = [d.get("reason") for d in stopped]
    assert [None] == due
    assert "closeout" in reasons
    for _ in range(3):
        h.clock.advance(15 * 60)
        await h.engine.rules_sweep()
        await h.engine.rules_pass()
        await h.settle()
    assert before == updates()


async def test_a_closed_out_client_that_comes_back_is_recorded(store: Store) -> None:
    """After the closeout is done, a new ticket of the client is linked as usual and
    recorded once as the client's return."""
    h = Harness.build(store)
    await linked(h, 2)
    assert (await apply(h)).done
    await linked(h, 1)
    with store.tx() as c:
        returns = co_store.returns_of(c, CLIENT)
        linked_, closed, returned = co_store.client_counts(c)
        listed = co_store.list_closeouts(c)
    assert 1 == len(returns)
    assert (1, 1, 1) == (linked_, closed, returned)
    assert 1 == listed[0].returns
    assert {"confirmed": 2} == dict(listed[0].counts)

    # leaving again: a second closeout covers the new ticket only
    notes = sum(len(ns) for ns in h.vendor.world.notes.values())
    second = await apply(h)
    assert second.done, second.closeout.reason
    with store.tx() as c:
        listed = co_store.list_closeouts(c)
    assert [(second.closeout.id, {"confirmed": 1}), (1, {"confirmed": 2})] == [
        (s.closeout.id, dict(s.counts)) for s in listed
    ]
    assert notes + 1 == sum(len(ns) for ns in h.vendor.world.notes.values())


def systems_with(closing: dict[str, Any]) -> dict[str, Any]:
    return {
        "systems": {
            "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
            "vendor": {"kind": "fake", "base_url": "http://vendor.invalid", "closing": closing},
        }
    }


async def test_the_configured_closing_terms_win_over_the_products(store: Store) -> None:
    """``systems.<name>.closing`` replaces the product's cancel status and note; what it
    leaves out (the completing terms) stays the product's."""
    closing = {
        "cancel_status": "Closed",
        "cancel_note": "{{ client }} left us; ticket {{ vendor_ticket }} ({{ summary }}) is "
        "withdrawn by {{ msp }}.",
    }
    h = Harness.build(store, extra=systems_with(closing))
    tickets = await linked(h, 2)
    ids = vendor_ids(h)
    outcome = await apply(h, complete={tickets[0].ref.id})
    assert outcome.done, outcome.closeout.reason
    cancelled = ids[tickets[1].ref.id]
    assert "Closed" == h.vendor.world.tickets[cancelled].status
    texts = [n.text for n in h.vendor.world.notes[cancelled]]
    assert (
        f"ACME left us; ticket {h.vendor.world.tickets[cancelled].ref.number} (Issue 1) is "
        "withdrawn by Fake." in texts
    )
    assert "Resolved" == h.vendor.world.tickets[ids[tickets[0].ref.id]].status


async def test_a_closing_note_that_does_not_render_refuses_before_writing(store: Store) -> None:
    """A template naming an unknown variable stops the closeout before anything is queued,
    naming the setting to fix."""
    h = Harness.build(store, extra=systems_with({"cancel_note": "bye {{ nobody }}"}))
    await linked(h, 1)
    with pytest.raises(CloseoutError, match=r"systems\.vendor\.closing"):
        await apply(h)
    assert [] == [
        r for r in h.outbox() if r.target_system == "vendor" and r.operation != "create_ticket"
    ]
    with store.tx() as c:
        assert [] == co_store.list_closeouts(c)


async def test_a_vendor_that_is_down_leaves_the_ticket_open_until_a_later_run(
    store: Store,
) -> None:
    """The vendor answers 503 to the closing note: the write waits for its retry, the
    ticket is reported open with the vendor's error; once the vendor is back, running the
    closeout again sends it and finishes."""
    h = Harness.build(store)
    await linked(h, 1)
    vid = next(iter(vendor_ids(h).values()))
    original = h.vendor.add_note
    down = True

    async def unavailable(ticket_id: str, note: Any, key: str) -> str | None:
        if down:
            raise TransientError("503 Service Unavailable", system="vendor", status=503)
        return await original(ticket_id, note, key)

    h.vendor.add_note = unavailable  # type: ignore[method-assign]
    # the fake clock stands still (poll_every 0): the retry is not due within the run
    outcome = await apply(h, timeout=0.3, poll_every=0)
    assert not outcome.done
    row = outcome.tickets[0].outcome
    assert row is not None
    assert TicketState.OPEN.value == row.state
    assert "waiting to be retried" in (row.reason or "")
    assert "503" in (row.reason or "")
    assert [] == closing_notes(h, vid)

    down = False
    h.clock.advance(h.engine.config.engine.backoff_max + 1)
    outcome = await apply(h)
    assert outcome.done, outcome.closeout.reason
    assert 1 == len(closing_notes(h, vid))


async def test_the_report_holds_the_tenure_sla_and_the_kpis(store: Store) -> None:
    """The report of a closeout whose vendor needed a retry: the client's scorecard over its
    tenure (its own tickets only), the retry as a deactivation issue, retention over both
    clients, and the return once the client comes back -- in Markdown and HTML."""
    from tests.harness import SLA
    from ticketbridge.closeout_report import build_report, render_html, render_markdown

    h = Harness.build(store, sla_config=SLA, accounts={"ACME": {"c": "1"}, "OTHER": {"c": "2"}})
    await linked(h, 2)
    await linked(h, 3, client="OTHER")
    h.vendor.fail_next("add_note", TransientError("503 Service Unavailable", system="vendor"))

    async def sleep(seconds: float) -> None:
        h.clock.advance(max(seconds, h.engine.config.engine.backoff_max))

    closing = Closer(
        h.engine.config, store, h.engine.adapters, h.clock, h.engine.dispatch_once, sleep=sleep
    )
    outcome = await closing.apply(CLIENT, timeout=30, poll_every=1)
    assert outcome.done, outcome.closeout.reason

    report = build_report(store, h.engine.config, h.engine.adapters, CLIENT, now=h.clock.now())
    assert (0, 2, 2) == (report.completed, report.cancelled, report.vendor_closed)
    assert 1 == len(report.issues)
    assert "needed 2 attempts" in (report.issues[0].issue or "")
    totals = [row for row in report.scorecard if row["priority"] == "all"]
    assert ["2"] == [row["tickets"] for row in totals]  # ACME's two, not OTHER's three
    assert ("50.0 %", "0.0 %") == (report.retention_rate, report.return_rate)
    md = render_markdown(report)
    assert "| Deactivation issues | 1 |" in md
    assert "| vendor | all | 2 |" in md

    await linked(h, 1)  # the client is back
    report = build_report(store, h.engine.config, h.engine.adapters, CLIENT, now=h.clock.now())
    assert ("50.0 %", "100.0 %", 1) == (
        report.retention_rate,
        report.return_rate,
        len(report.returns),
    )
    page = render_html(report)
    assert 'id="returns"' in page
    assert "<tr><td>This client's returns</td><td>1</td></tr>" in page


async def test_a_done_closeout_run_again_changes_nothing(store: Store) -> None:
    """Applying a finished closeout again (no ticket opened since) keeps its record: same
    closeout, same finishing time, no write and no vendor read."""
    h = Harness.build(store)
    await linked(h, 2)
    first = await apply(h)
    assert first.done
    h.clock.advance(3600)
    calls = len(h.vendor.world.calls)
    again = await apply(h)
    assert again.done
    assert (first.closeout.id, first.closeout.finished_at) == (
        again.closeout.id,
        again.closeout.finished_at,
    )
    assert calls == len(h.vendor.world.calls)
    with store.tx() as c:
        assert 1 == len(co_store.list_closeouts(c))


async def test_a_vendor_ticket_still_being_opened_is_closed_on_a_later_run(
    store: Store,
) -> None:
    """A ticket whose vendor ticket is not created yet keeps the closeout open (saying
    so); once it exists, the next run queues its closing writes and finishes."""
    h = Harness.build(store)
    h.psa_ticket("Just routed")
    await h.engine.poll("psa")  # linked, the vendor ticket not created yet
    assert "creating" == h.link().state
    h.vendor.fail_next("create_ticket", TransientError("503 Service Unavailable"))
    outcome = await apply(h, timeout=0.2, poll_every=0)  # the clock stands: no retry
    assert not outcome.done
    assert "not created yet" in (outcome.closeout.reason or "")
    assert h.link().vendor_ticket_id is None
    # the vendor is back: the create goes out in the next run, then its closing writes
    h.clock.advance(h.engine.config.engine.backoff_max + 1)
    outcome = await apply(h)
    vid = h.link().vendor_ticket_id
    assert vid is not None
    assert outcome.done, outcome.closeout.reason
    assert 1 == len(closing_notes(h, vid))
    assert "Canceled" == h.vendor.world.tickets[vid].status
