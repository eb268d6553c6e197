"""Inserts that writers race on: two stores on one database, the same row at the same time.

Each test starts two writers (two ``Store`` objects, as two replicas would have) on two
threads, releases them together, and checks that exactly one of them wrote the row, that
the other neither failed nor duplicated it, and that one row exists afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store import Store, repo
from ticketbridge.store import rules as rule_store
from ticketbridge.store import sla as sla_store
from ticketbridge.store.tables import (
    cursors,
    inbox,
    ledger,
    lessons_learned,
    outbox,
    rule_states,
    sla_clocks,
    sla_flags,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
ROUNDS = 10


@pytest.fixture
def pair(store: Store, store_url: str) -> Iterator[tuple[Store, Store]]:
    """Two independent stores (engines, pools) on the same database."""
    other = Store(store_url)
    try:
        yield store, other
    finally:
        other.close()


def _link(store: Store, ticket: str) -> int:
    with store.tx() as c:
        return repo.insert_link(
            c,
            connection="c",
            psa_system="psa",
            psa_ticket_id=ticket,
            vendor_system="v",
            state="open",
            origin="routed",
            created_at=NOW,
            updated_at=NOW,
        )


def race(stores: tuple[Store, Store], write: Callable[[Connection, int], Any]) -> list[Any]:
    """Run ``write(conn, writer)`` on both stores at once, each in its own transaction."""
    barrier = threading.Barrier(2)

    def one(writer: int) -> Any:
        barrier.wait(timeout=10)
        with stores[writer].tx() as c:
            return write(c, writer)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, (0, 1)))


def count(store: Store, table: sa.Table) -> int:
    with store.tx() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


class TestRacingInserts:
    def test_same_outbox_key_is_queued_once(self, pair: tuple[Store, Store]):
        """Two writers queueing the same idempotency key: one queues it, one is told no."""
        link_id = _link(pair[0], "1")
        for n in range(ROUNDS):
            results = race(
                pair,
                lambda c, w, n=n: repo.enqueue(
                    c,
                    link_id=link_id,
                    target_system="v",
                    operation="add_note",
                    key=f"k{n}",
                    payload={"writer": w},
                    now=NOW,
                ),
            )
            assert [False, True] == sorted(results)
        assert ROUNDS == count(pair[0], outbox)

    def test_same_webhook_delivery_is_recorded_once(self, pair: tuple[Store, Store]):
        """Two replicas receiving one delivery: one hint."""
        for n in range(ROUNDS):
            results = race(
                pair,
                lambda c, _w, n=n: repo.add_hint(
                    c, system="snow", delivery_key=f"d{n}", ticket_id="t", now=NOW
                ),
            )
            assert [False, True] == sorted(results)
        assert ROUNDS == count(pair[0], inbox)

    def test_same_note_is_entered_in_the_ledger_once(self, pair: tuple[Store, Store]):
        """Two writers recording the same source note: one ledger row."""
        link_id = _link(pair[0], "1")
        for n in range(ROUNDS):
            results = race(
                pair,
                lambda c, _w, n=n: repo.insert_ledger(
                    c,
                    link_id=link_id,
                    source_system="psa",
                    source_note_id=str(n),
                    source_created_at=NOW,
                    target_system="v",
                    key=f"n{n}",
                    state="pending",
                    created_at=NOW,
                ),
            )
            assert [False, True] == sorted(results)
        assert ROUNDS == count(pair[0], ledger)

    def test_same_sla_flag_is_raised_once(self, pair: tuple[Store, Store]):
        """A threshold crossed, seen by two sweeps at once, is flagged by exactly one."""
        link_id = _link(pair[0], "1")
        for n in range(ROUNDS):
            results = race(
                pair,
                lambda c, _w, n=n: sla_store.record_flag(
                    c,
                    link_id,
                    metric="resolution",
                    kind="breach",
                    level=100,
                    episode=n + 1,
                    occurred_at=NOW,
                    now=NOW,
                ),
            )
            assert [False, True] == sorted(results)
        assert ROUNDS == count(pair[0], sla_flags)

    def test_same_lessons_learned_is_opened_once(self, pair: tuple[Store, Store]):
        """One review per key, whoever opens it first."""
        link_id = _link(pair[0], "1")
        for n in range(ROUNDS):
            results = race(
                pair,
                lambda c, w, n=n: rule_store.open_lessons_learned(
                    c,
                    link_id,
                    rule="r",
                    key=f"l{n}",
                    summary=f"by {w}",
                    details="",
                    now=NOW,
                ),
            )
            assert [False, True] == sorted(results)
        assert ROUNDS == count(pair[0], lessons_learned)


class TestRacingUpserts:
    def test_first_cursor_save_by_two_writers_keeps_one_row(self, pair: tuple[Store, Store]):
        """Both writers saving a system's first cursor: no error, one row, one of theirs."""
        for n in range(ROUNDS):
            positions = [NOW + timedelta(seconds=w) for w in (0, 1)]
            race(
                pair,
                lambda c, w, n=n, positions=positions: repo.save_cursor(
                    c, f"s{n}", repo.CursorState(positions[w], {"t": str(w)}), NOW
                ),
            )
            with pair[0].tx() as c:
                state = repo.get_cursor(c, f"s{n}")
            assert state.position in positions
            assert {"t": str(positions.index(state.position))} == state.seen
        assert ROUNDS == count(pair[0], cursors)

    def test_first_clock_save_by_two_writers_keeps_one_row(self, pair: tuple[Store, Store]):
        """Two writers storing a link's first SLA checkpoint: one row, the last writer's."""
        for n in range(ROUNDS):
            link_id = _link(pair[0], str(n))
            race(
                pair,
                lambda c, w, link_id=link_id: sla_store.save_clock(
                    c,
                    link_id,
                    contract=f"by {w}",
                    priority="P1",
                    policy_key="k",
                    state={"writer": w},
                    next_wakeup=None,
                    breached=False,
                    updated_at=NOW,
                ),
            )
            with pair[0].tx() as c:
                clock = sla_store.clock_for(c, link_id)
            assert clock is not None
            assert f"by {clock.state['writer']}" == clock.contract
        assert ROUNDS == count(pair[0], sla_clocks)

    def test_first_rule_state_save_by_two_writers_keeps_one_row(self, pair: tuple[Store, Store]):
        """Two writers storing a link's first rule progress: one row, no error."""
        for n in range(ROUNDS):
            link_id = _link(pair[0], str(n))
            race(
                pair,
                lambda c, w, link_id=link_id: rule_store.save_rule_state(
                    c, link_id, state={"writer": w}, next_due_at=NOW, now=NOW
                ),
            )
            with pair[0].tx() as c:
                stored = rule_store.rule_state(c, link_id)
            assert stored is not None
            assert stored.state["writer"] in (0, 1)
        assert ROUNDS == count(pair[0], rule_states)


class TestFencing:
    def test_a_completion_after_the_lease_was_taken_over_is_refused_without_trace(
        self, pair: tuple[Store, Store]
    ):
        """Process 1 claims a write, its lease runs out, process 2 claims it: process 1's
        completion (with the ledger, link and follow-up it records) is refused and rolls
        back whole; process 2 completes it."""
        one, two = pair
        link_id = _link(one, "fenced")
        with one.tx() as c:
            repo.enqueue(
                c,
                link_id=link_id,
                target_system="v",
                operation="add_note",
                key="fenced-1",
                payload={},
                now=NOW,
            )
        lease = timedelta(seconds=30)
        with one.tx() as c:
            [first] = repo.claim_outbox(c, NOW, limit=5, lease=lease, postgres=not one.is_sqlite)
        later = NOW + timedelta(seconds=31)
        with two.tx() as c:
            [second] = repo.claim_outbox(c, later, limit=5, lease=lease, postgres=not two.is_sqlite)
        assert first.id == second.id
        assert first.claim_token != second.claim_token

        def complete_late(c: Connection) -> None:
            repo.update_link(c, link_id, vendor_ticket_id="V1", updated_at=later)
            repo.add_event(c, "note_mirrored", now=later, link_id=link_id)
            repo.enqueue(
                c,
                link_id=link_id,
                target_system="psa",
                operation="update_ticket",
                key="follow-up",
                payload={},
                now=later,
            )
            repo.outbox_done(c, first.id, later, token=first.claim_token)

        with pytest.raises(repo.ClaimLostError), one.tx() as c:
            complete_late(c)
        for refused in (
            lambda c: repo.outbox_retry(
                c, first.id, at=later, error="x", uncertain=False, token=first.claim_token
            ),
            lambda c: repo.outbox_dead(c, first.id, error="x", token=first.claim_token),
        ):
            with pytest.raises(repo.ClaimLostError), one.tx() as c:
                refused(c)
        with one.tx() as c:
            assert repo.link_by_id(c, link_id).vendor_ticket_id is None  # type: ignore[union-attr]
            assert repo.link_events(c, link_id) == []
            [row] = repo.outbox_rows(c)
        assert (row.state, row.claim_token) == ("sending", second.claim_token)
        with two.tx() as c:
            repo.outbox_done(c, second.id, later, token=second.claim_token)
            assert ["done"] == [r.state for r in repo.outbox_rows(c)]

    def test_renewal_needs_a_live_lease(self, pair: tuple[Store, Store]):
        """The owner re-checks right before sending: a lease that ran out is not renewed,
        even if nobody claimed the row yet."""
        one, _two = pair
        link_id = _link(one, "renew")
        with one.tx() as c:
            repo.enqueue(
                c,
                link_id=link_id,
                target_system="v",
                operation="add_note",
                key="r",
                payload={},
                now=NOW,
            )
        lease = timedelta(seconds=30)
        with one.tx() as c:
            [row] = repo.claim_outbox(c, NOW, limit=1, lease=lease, postgres=not one.is_sqlite)
            soon = NOW + timedelta(seconds=10)
            assert soon + lease == repo.outbox_renew(
                c, row.id, token=row.claim_token, now=soon, lease=lease
            )
            late = soon + timedelta(seconds=31)
            assert None is repo.outbox_renew(
                c, row.id, token=row.claim_token, now=late, lease=lease
            )
