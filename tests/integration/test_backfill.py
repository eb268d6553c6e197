"""Backfill: linked tickets that exist before the store knew them are adopted with their
note history, nothing posted; an interrupted run continues where it stopped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.harness import Harness
from ticketbridge.adapters.fake.adapter import FakeSettings
from ticketbridge.adapters.fake.simulator import API_USER
from ticketbridge.domain import Ticket, Visibility
from ticketbridge.engine import decide
from ticketbridge.engine.backfill import Backfill
from ticketbridge.store import Store, repo
from ticketbridge.store.tables import ledger

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

WINDOW = timedelta(days=30)


@dataclass
class Pair:
    psa: Ticket
    vendor: Ticket
    psa_public: str  # a PSA note an earlier installation mirrored to the vendor
    vendor_public: str  # a vendor note an earlier installation mirrored to the PSA


def linked_history(h: Harness, count: int) -> list[Pair]:
    """``count`` PSA tickets naming a vendor ticket, each with notes on both sides: people's
    notes (public and internal) and the copies an earlier installation wrote."""
    psa_label = h.engine.config.display_name("psa")
    vendor_label = h.engine.config.display_name("vendor")
    pairs = []
    for n in range(count):
        vendor = h.vendor.world.add_ticket(
            "vendor", f"Circuit {n} down", number=f"INC{n:04d}", status="In Progress", priority="2"
        )
        psa = h.psa_ticket(f"Circuit {n} down", queue="Service Desk", external_ref=f"INC{n:04d}")
        h.clock.advance(60)
        public = h.psa_note(psa, f"Client {n} reports the line is dead.", Visibility.PUBLIC)
        h.psa_note(psa, f"Internal {n}: contract renewal due.", Visibility.INTERNAL)
        h.clock.advance(60)
        h.vendor.world.add_note(
            "vendor",
            vendor.ref.id,
            decide.render_for_vendor(public, psa_label, psa.ref.label),
            Visibility.PUBLIC,
            API_USER,
        )
        h.clock.advance(60)
        comment = h.vendor_note(vendor.ref.id, f"Engineer {n} dispatched.", Visibility.PUBLIC)
        h.vendor_note(vendor.ref.id, f"Work note {n}: card fault.", Visibility.INTERNAL)
        h.clock.advance(60)
        h.psa.world.add_note(
            "psa",
            psa.ref.id,
            decide.render_for_psa(comment, vendor_label, vendor.ref.label),
            Visibility.INTERNAL,
            API_USER,
        )
        pairs.append(Pair(psa, vendor, public.id, comment.id))
        h.clock.advance(300)
    return pairs


def note_counts(h: Harness) -> tuple[int, int]:
    return (
        sum(len(notes) for notes in h.psa.world.notes.values()),
        sum(len(notes) for notes in h.vendor.world.notes.values()),
    )


def backfill(h: Harness) -> Backfill:
    """A backfill as a new ``ticketbridge backfill`` process would build it."""
    return Backfill(h.engine.config, h.store, h.engine.adapters, h.clock)


def ledger_rows(store: Store) -> list[sa.Row[tuple[object, ...]]]:
    with store.tx() as c:
        return list(c.execute(sa.select(ledger)).all())


class TestBackfill:
    async def test_adopts_linked_tickets_with_their_history_and_posts_nothing(
        self, store: Store
    ) -> None:
        """Five linked tickets with notes on both sides: five open links; copies found on
        the other side recorded done, people's notes recorded seen; no write queued, and
        the daemon's polls afterwards post nothing either."""
        h = Harness.build(store)
        pairs = linked_history(h, 5)
        h.clock.advance(timedelta(days=2))
        before = note_counts(h)

        [(psa, conns)] = backfill(h).plan().items()
        run = await backfill(h).run(psa, conns, WINDOW)

        assert run.finished
        assert 5 == run.counts["adopted"]
        assert 5 == run.counts["notes_matched"] // 2  # one copy each way per ticket
        assert 10 == run.counts["notes_seen"]  # the two internal notes per ticket
        with store.tx() as c:
            links = repo.list_links(c)
        assert 5 == len(links)
        assert {("open", "manual")} == {(link.state, link.origin) for link in links}
        assert {p.vendor.ref.id for p in pairs} == {link.vendor_ticket_id for link in links}
        assert "In Progress" == links[0].vendor_status
        rows = ledger_rows(store)
        done = {row.source_note_id for row in rows if row.state == "done"}
        assert {p.psa_public for p in pairs} | {p.vendor_public for p in pairs} == done
        assert all(row.target_note_id for row in rows if row.state == "done")
        assert [] == h.outbox()
        assert before == note_counts(h)

        for pair in pairs:  # the daemon reads every adopted ticket on both sides
            await h.engine.process_ticket("psa", pair.psa.ref.id, trigger="poll")
            await h.engine.process_ticket("vendor", pair.vendor.ref.id, trigger="poll")
        await h.settle()
        assert before == note_counts(h)
        assert [] == h.outbox()

    async def test_after_adoption_only_new_notes_cross(self, store: Store) -> None:
        """A note written after the adoption is mirrored, once; the history stays put."""
        h = Harness.build(store)
        [pair] = linked_history(h, 1)
        [(psa, conns)] = backfill(h).plan().items()
        await backfill(h).run(psa, conns, WINDOW)
        before_psa, before_vendor = note_counts(h)

        h.clock.advance(120)
        h.psa_note(pair.psa, "Client says it is back after a reboot?", Visibility.PUBLIC)
        await h.settle()

        vendor_notes = h.vendor.world.notes[pair.vendor.ref.id]
        assert before_vendor + 1 == len(vendor_notes)
        assert "Client says it is back after a reboot?" in vendor_notes[-1].text
        assert before_psa + 1 == note_counts(h)[0]

    async def test_interrupted_and_resumed_does_nothing_twice(self, store: Store) -> None:
        """Stopped after two tickets, then run again: the second run continues after them
        (their notes are not read again), adopts the other three, posts nothing."""
        h = Harness.build(store)
        pairs = linked_history(h, 5)
        h.clock.advance(timedelta(days=1))
        before = note_counts(h)
        [(psa, conns)] = backfill(h).plan().items()

        first = await backfill(h).run(psa, conns, WINDOW, stop_after=2)
        assert not first.finished
        assert 2 == first.counts["adopted"]
        h.psa.world.calls.clear()
        h.clock.advance(60)

        second = await backfill(h).run(psa, conns, WINDOW)
        assert second.resumed
        assert second.finished
        assert 5 == second.counts["adopted"]
        assert 0 == second.counts["already_linked"]
        read_again = {ref for op, ref in h.psa.world.calls if op == "list_notes"}
        assert {p.psa.ref.id for p in pairs[2:]} == read_again
        with store.tx() as c:
            assert 5 == len(repo.list_links(c))
        assert [] == h.outbox()
        assert before == note_counts(h)

        third = await backfill(h).run(psa, conns, WINDOW)  # a finished run starts afresh
        assert not third.resumed
        assert 5 == third.counts["already_linked"]
        assert 0 == third.counts["adopted"]
        assert before == note_counts(h)

    async def test_tickets_without_a_reference_or_outside_the_window_are_left(
        self, store: Store
    ) -> None:
        """A PSA ticket naming no vendor ticket, one naming a number the vendor does not
        know, and one last updated before the window are not linked."""
        h = Harness.build(store)
        old = h.psa_ticket("Old outage", queue="Service Desk", external_ref="INC9000")
        h.vendor.world.add_ticket("vendor", "Old outage", number="INC9000", status="Resolved")
        h.clock.advance(timedelta(days=40))
        h.psa_ticket("Printer jam", queue="Service Desk")
        h.psa_ticket("Typo", queue="Service Desk", external_ref="INC-NOPE")
        [(psa, conns)] = backfill(h).plan().items()

        run = await backfill(h).run(psa, conns, WINDOW)

        assert 2 == run.counts["read"]
        assert 1 == run.counts["no_reference"]
        assert 1 == run.counts["not_found"]
        assert 0 == run.counts["adopted"]
        with store.tx() as c:
            assert [] == repo.list_links(c)
        assert old.ref.id not in {ref for op, ref in h.psa.world.calls if op == "list_notes"}

    async def test_a_ticket_the_daemon_links_meanwhile_is_left_to_it(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The daemon links the ticket while the backfill reads its notes: the backfill
        records nothing of its own for it (one link, the daemon's) and counts it linked."""
        h = Harness.build(store)
        [pair] = linked_history(h, 1)
        vendor = h.engine.adapters["vendor"]
        read_notes = vendor.list_notes

        async def daemon_first(ticket_id: str, since: object = None) -> object:
            await h.engine.process_ticket("psa", pair.psa.ref.id, trigger="webhook")
            return await read_notes(ticket_id)

        monkeypatch.setattr(vendor, "list_notes", daemon_first)
        [(psa, conns)] = backfill(h).plan().items()

        run = await backfill(h).run(psa, conns, WINDOW)

        assert (0, 1) == (run.counts["adopted"], run.counts["already_linked"])
        with store.tx() as c:
            [link] = repo.list_links(c)
            events = repo.link_events(c, link.id)
        assert [] == [e.kind for e in events if e.detail.get("backfill")]

    async def test_pages_of_the_listing_and_a_stop_inside_one(self, store: Store) -> None:
        """With two tickets per page, a run stopped after the third ticket (inside the
        second page) and resumed adopts the other two, reading each ticket's notes once."""
        h = Harness.build(store)
        h.psa.fake = FakeSettings(page_size=2)
        pairs = linked_history(h, 5)
        [(psa, conns)] = backfill(h).plan().items()

        first = await backfill(h).run(psa, conns, WINDOW, stop_after=3)
        second = await backfill(h).run(psa, conns, WINDOW)

        assert (3, 5) == (first.counts["adopted"], second.counts["adopted"])
        reads = [ref for op, ref in h.psa.world.calls if op == "list_notes"]
        assert sorted(p.psa.ref.id for p in pairs) == sorted(reads)
        pages = [ref for op, ref in h.psa.world.calls if op == "changes_after"]
        assert len(pages) >= 3
