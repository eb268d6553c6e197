"""Deciding a linked ticket costs few store round trips: read once, decide, apply once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Harness
from ticketbridge.domain import Visibility
from ticketbridge.engine import mirror
from ticketbridge.store import Store, repo
from ticketbridge.store import plan as store_plan

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Trips:
    """Statements sent to the database and transactions run through ``Store.run``."""

    def __init__(self) -> None:
        self.statements = 0
        self.runs = 0


@contextmanager
def counting(store: Store) -> Iterator[Trips]:
    trips = Trips()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):  # SQLite's explicit BEGIN
            trips.statements += 1

    real_run = store.run

    async def run(work: Any) -> Any:
        trips.runs += 1
        return await real_run(work)

    sa.event.listen(store.engine, "before_cursor_execute", on_execute)
    store.run = run  # type: ignore[method-assign]
    try:
        yield trips
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", on_execute)
        store.run = real_run  # type: ignore[method-assign]


async def linked(store: Store) -> tuple[Harness, Any, str]:
    h = Harness.build(store)
    t = h.psa_ticket()
    await h.settle()
    return h, t, h.link().vendor_ticket_id


async def test_psa_ticket_with_new_notes(store: Store):
    """A linked PSA ticket with three new notes (two cross, one is withheld): one read of
    the links and of the newest note handled (where its notes are read from), one
    transaction that reads links and ledger keys and writes the plan — 7 statements
    (12 when the engine wrote as it decided)."""
    h, t, _ = await linked(store)
    h.psa_note(t, "Client confirms outage.", Visibility.PUBLIC)
    h.psa_note(t, "Rebooted the router.", Visibility.PUBLIC)
    h.psa_note(t, "Behind on invoices.", Visibility.INTERNAL)
    with counting(store) as trips:
        await h.engine.process_ticket("psa", t.ref.id, trigger="poll")
    assert (7, 2) == (trips.statements, trips.runs)
    assert 2 == len(h.outbox("pending"))


async def test_vendor_ticket_with_new_notes(store: Store):
    """A linked vendor ticket with three new notes: 8 statements (17 before), the newest
    note handled included."""
    h, _, vid = await linked(store)
    h.vendor_note(vid, "Engineer dispatched.", Visibility.PUBLIC)
    h.vendor_note(vid, "Card swap on PE router.", Visibility.INTERNAL)
    h.vendor_note(vid, "Parts ordered.", Visibility.PUBLIC)
    with counting(store) as trips:
        await h.engine.process_ticket("vendor", vid, trigger="poll")
    assert (8, 2) == (trips.statements, trips.runs)
    assert 3 == len(h.outbox("pending"))


async def test_applying_a_plan_twice_adds_nothing(store: Store):
    """Ledger entries and outbox rows are keyed: a plan applied again (a second replica
    that decided the same notes) queues nothing more and doubles no row."""
    h, t, _ = await linked(store)
    h.psa_note(t, "Client confirms outage.", Visibility.PUBLIC)
    h.psa_note(t, "Behind on invoices.", Visibility.INTERNAL)
    name = h.link().connection
    with store.tx() as c:
        current = store_plan.linked_for_psa(c, [name], t.ref.id)[name]
    assert current is not None
    ticket = await h.psa.get_ticket(t.ref.id)
    notes = await h.psa.list_notes(t.ref.id)
    conn = h.engine.connections[name]
    plan = mirror.decide_psa_linked(
        conn, current, ticket, notes, psa_label="PSA", now=h.clock.now()
    )
    assert 1 == len(plan.outbox)
    with store.tx() as c:
        first = store_plan.apply_plan(c, plan)
    with store.tx() as c:
        second = store_plan.apply_plan(c, plan)
        ledger = repo.ledger_rows(c, current.link.id)
    assert (1, 0) == (first.queued, second.queued)
    assert 1 == len(h.outbox("pending"))
    assert 2 == len(ledger)
    assert {plan.outbox[0].key} == {r.key for r in h.outbox("pending")}
