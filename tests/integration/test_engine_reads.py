"""What the engine reads to decide: a ticket a webhook payload or a listing showed is not
read again unless it is older than what was seen; notes are read from the newest handled."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from tests.harness import Harness
from ticketbridge.domain import Note, Ticket, Visibility
from ticketbridge.engine import Engine
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Reads:
    """Counts the adapter's ticket and note reads, and the ``since`` each notes read asked."""

    def __init__(self, adapter: Any) -> None:
        self.tickets = 0
        self.since: list[datetime | None] = []
        real_ticket, real_notes = adapter.get_ticket, adapter.list_notes

        async def get_ticket(ticket_id: str) -> Ticket:
            self.tickets += 1
            ticket: Ticket = await real_ticket(ticket_id)
            return ticket

        async def list_notes(ticket_id: str, since: datetime | None = None) -> list[Note]:
            self.since.append(since)
            notes: list[Note] = await real_notes(ticket_id, since=since)
            return notes

        adapter.get_ticket, adapter.list_notes = get_ticket, list_notes


async def linked(store: Store) -> tuple[Harness, Ticket]:
    h = Harness.build(store)
    t = h.psa_ticket()
    await h.settle()
    h.psa_note(t, "First word.", Visibility.PUBLIC)
    await h.settle()
    return h, t


async def test_a_shown_ticket_is_not_read_again(store: Store) -> None:
    """A ticket shown by a webhook payload: no ticket read; its notes are read since the
    newest one handled (less the overlap), not whole; the note crosses once."""
    h, t = await linked(store)
    h.clock.advance(30)
    h.psa_note(t, "Rebooted the router.", Visibility.PUBLIC)
    shown = h.psa.world.change(t.ref.id, status="In Progress")
    reads = Reads(h.psa)
    await h.engine.process_ticket("psa", t.ref.id, trigger="webhook", ticket=shown)
    assert (0, "In Progress") == (reads.tickets, h.link().psa_status)
    assert [True] == [since is not None for since in reads.since]
    await h.settle()
    texts = [n.text for n in h.vendor.world.notes[h.link().vendor_ticket_id]]
    assert 1 == sum("Rebooted the router." in text for text in texts)


async def test_a_shown_ticket_older_than_seen_is_read(store: Store) -> None:
    """A payload that arrives after a newer one was handled (webhooks come out of order)
    is not trusted: the ticket is read, and its old status does not come back."""
    h, t = await linked(store)
    h.clock.advance(30)
    old = h.psa.world.change(t.ref.id, status="In Progress")
    h.clock.advance(30)
    new = h.psa.world.change(t.ref.id, status="Waiting on Vendor")
    await h.engine.process_ticket("psa", t.ref.id, trigger="webhook", ticket=new)
    reads = Reads(h.psa)
    await h.engine.process_ticket("psa", t.ref.id, trigger="webhook", ticket=old)
    assert (1, "Waiting on Vendor") == (reads.tickets, h.link().psa_status)


async def test_a_stale_payload_after_a_restart_is_read(store: Store) -> None:
    """After a start (nothing seen in memory) the link's snapshot still tells a payload
    older than the last change handled."""
    h, t = await linked(store)
    h.clock.advance(30)
    old = h.psa.world.change(t.ref.id, status="In Progress")
    h.clock.advance(30)
    new = h.psa.world.change(t.ref.id, status="Waiting on Vendor")
    await h.engine.process_ticket("psa", t.ref.id, trigger="webhook", ticket=new)
    # a new process on the same store and systems: nothing seen in memory
    fresh = Engine(h.engine.config, store, h.engine.adapters, Metrics(), h.clock)
    reads = Reads(h.psa)
    await fresh.process_ticket("psa", t.ref.id, trigger="webhook", ticket=old)
    assert (1, "Waiting on Vendor") == (reads.tickets, h.link().psa_status)


async def test_notes_are_read_whole_again_after_note_reread(store: Store) -> None:
    """The incremental read has a backstop: past ``engine.note_reread`` the notes are read
    whole once, and a note that became visible late is mirrored then."""
    h, t = await linked(store)
    h.clock.advance(30)
    late = h.psa_note(t, "Written long ago, visible now.", Visibility.PUBLIC)
    notes = h.psa.world.notes[t.ref.id]
    notes[notes.index(late)] = replace(late, created_at=late.created_at.replace(year=2001))
    reads = Reads(h.psa)
    await h.engine.process_ticket("psa", t.ref.id, trigger="poll")
    assert reads.since[-1] is not None
    h.engine._read_whole.clear()  # as if note_reread had passed
    await h.engine.process_ticket("psa", t.ref.id, trigger="poll")
    assert reads.since[-1] is None
    await h.settle()
    texts = [n.text for n in h.vendor.world.notes[h.link().vendor_ticket_id]]
    assert 1 == sum("Written long ago" in text for text in texts)
