"""SQL statements per mirrored note, counted, so the count cannot creep back up.

One note in webhook mode: the PSA's callback is recorded (intake), the hint is read
and the ticket decided (engine), the write is claimed, sent and marked done
(dispatcher), and the vendor's callback for the note just written is read and found
to be ours (echo).  Counted on the store's engine with SQLAlchemy's
``before_cursor_execute`` event; SQLite's ``BEGIN IMMEDIATE`` is left out so both
stores count the same statements.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Harness
from ticketbridge.domain import Visibility
from ticketbridge.store import Store

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@contextmanager
def counting(store: Store) -> Iterator[Counter[str]]:
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split(None, 1)
        if words and words[0].upper() != "BEGIN":
            seen[words[0].upper()] += 1

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


async def _linked(store: Store) -> tuple[Harness, Any, str]:
    h = Harness.build(store)
    t = h.psa_ticket()
    await h.settle()
    vendor = h.link().vendor_ticket_id
    assert vendor is not None
    return h, t, vendor


class TestStatementsPerNote:
    async def test_intake_is_one_statement_per_batch(self, store: Store) -> None:
        h, t, _ = await _linked(store)
        with counting(store) as seen:
            added = await asyncio.gather(
                *(h.engine.add_hint("psa", t.ref.id, f"delivery-{n}") for n in range(5)),
                h.engine.add_hint("psa", t.ref.id, "delivery-0"),  # a copy: not added twice
            )
        assert [True] * 5 + [False] == added
        # submitted together: one transaction, one statement for all six
        assert {"INSERT": 1} == dict(seen)

    async def test_a_mirrored_note(self, store: Store) -> None:
        h, t, vendor = await _linked(store)
        h.psa_note(t, "counted note", Visibility.PUBLIC)
        with counting(store) as decide:
            assert await h.engine.add_hint("psa", t.ref.id, "delivery-2")
            assert 1 == await h.engine.process_hints()
        with counting(store) as send:
            assert 1 == await h.engine.dispatcher.dispatch_once()
        assert 1 == sum("counted note" in n.text for n in h.vendor.world.notes[vendor])
        with counting(store) as echo:
            assert await h.engine.add_hint("vendor", vendor, "delivery-3")
            assert 1 == await h.engine.process_hints()
        assert [] == h.outbox("pending", "sending")
        # claim: one UPDATE … WHERE id IN (due) RETURNING, the links; done: outbox, ledger,
        # audit event; the outbox depth gauge
        assert {"SELECT": 2, "UPDATE": 3, "INSERT": 1} == dict(send)
        # intake, hints, reading the ticket's link and ledger, the plan, the hints' round
        assert sum(decide.values()) <= 11, dict(decide)
        # the vendor's callback for our own note: read, found ours, nothing queued
        assert sum(echo.values()) <= 10, dict(echo)

    async def test_a_claim_is_two_statements_whatever_its_size(self, store: Store) -> None:
        h = Harness.build(store)
        tickets = [h.psa_ticket(f"ticket {n}") for n in range(3)]
        await h.settle()
        for t in tickets:
            h.psa_note(t, f"note on {t.ref.id}", Visibility.PUBLIC)
        await h.engine.poll("psa")
        with counting(store) as seen:
            rows = await h.engine.dispatcher.claim(10)
        assert 3 == len(rows)
        assert {"SELECT": 1, "UPDATE": 1} == dict(seen)
        with counting(store) as sent:
            for row in rows:
                await h.engine.dispatcher.send(row)
        # sent right after the claim: no renewal, no link read; done is three statements
        assert {"UPDATE": 6, "INSERT": 3} == dict(sent)
        done = [r.id for r in h.outbox("done") if r.operation == "add_note"]
        assert sorted(row.id for row in rows) == sorted(done)


def test_a_claim_reads_only_the_open_rows_of_a_ticket(tmp_path) -> None:
    """The claim's look for earlier open rows of the same ticket uses the partial index on
    open rows (SQLite's plan), so done rows, however many, cost it nothing."""
    from datetime import timedelta

    from ticketbridge.clock import utcnow
    from ticketbridge.store import Store, repo

    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    store.upgrade()
    sent: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
        if statement.startswith("UPDATE outbox"):
            sent.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.tx() as c:
            repo.claim_outbox(c, utcnow(), limit=16, lease=timedelta(minutes=5), postgres=False)
        statement, params = sent[0]
        with store.engine.connect() as conn:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            )
    finally:
        store.close()
    assert "SEARCH earlier USING INDEX ix_outbox_open" in plan, plan
