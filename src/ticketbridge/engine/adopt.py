"""Pure decisions for adopting a link that already exists in both systems (a backfill).

A PSA ticket that already names its vendor ticket (the vendor-reference field, the
manual-link path) may have a long history on both sides: notes people wrote, and notes
an earlier installation (or a store since lost) mirrored.  Adopting it records all of
that as already present, so nothing is written again:

* a note whose copy is found on the other side (the text the mirror would write, see
  :func:`~ticketbridge.engine.decide.render_for_vendor` / ``render_for_psa``) is
  recorded *done*, with that copy as its target;
* a note we wrote (the copy itself, or any note by the integration user or carrying our
  marker) is recorded as an echo;
* every other note is recorded as *seen* (skipped, reason ``backfill``), never mirrored.

The link's statuses, priorities and assignee are stored as read, so the first read that
follows carries no change across.  The link's history gets what a normal first read
would have written (the vendor's notes and status, the vendor ticket seen) and
:data:`~ticketbridge.engine.linking.ADOPTED`, so escalation rules adopt what is due at
once instead of running it.  No store, no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticketbridge.config import ConnectionConfig
from ticketbridge.domain import Note, Ticket, Visibility, body_hash, note_key, note_order
from ticketbridge.engine import decide
from ticketbridge.engine.linking import ADOPTED, new_link
from ticketbridge.engine.mirror import EXCERPT
from ticketbridge.plan import Event, LedgerEntry, NewLink, Plan
from ticketbridge.store.plan import VENDOR_SEEN
from ticketbridge.store.rows import LinkRow

__all__ = ["BACKFILL", "AdoptedNotes", "adopted_link", "decide_adoption", "match_copies"]

#: The ledger's reason for a note that existed before its link was adopted.
BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class AdoptedNotes:
    """How one adoption recorded the two sides' notes."""

    #: Notes whose copy on the other side was found (recorded done).
    matched: int = 0
    #: Notes by people recorded as seen, not mirrored.
    seen: int = 0
    #: Notes we wrote (copies and other notes of the integration user).
    ours: int = 0


def adopted_link(
    conn: ConnectionConfig,
    psa_ticket: Ticket,
    vendor_ticket: Ticket,
    watching: LinkRow | None,
    now: datetime,
) -> NewLink:
    """The link of an adopted ticket pair: a manual link whose vendor side is already read
    (status, priority and assignee as they are: nothing to carry across), closed when the
    PSA ticket is."""
    made = new_link(conn, psa_ticket, vendor_ticket, watching, now)
    values: dict[str, Any] = {
        **made.values,
        "vendor_status": vendor_ticket.status,
        "vendor_priority": vendor_ticket.priority,
        "vendor_assignee": vendor_ticket.assignee,
    }
    if psa_ticket.closed:
        values["state"] = "closed"
    return NewLink(values, made.upgrade)


def match_copies(sources: list[Note], targets: list[Note], render: Any) -> dict[str, str]:
    """Source note id -> id of its copy among ``targets``: the target note whose body is
    what mirroring the source note writes (``render(note)``).  Each copy is matched once,
    the oldest first."""
    free: dict[str, list[Note]] = defaultdict(list)
    for note in sorted(targets, key=note_order):
        free[body_hash(note.text)].append(note)
    matched: dict[str, str] = {}
    for note in sorted(sources, key=note_order):
        candidates = free.get(body_hash(render(note)))
        if candidates:
            matched[note.id] = candidates.pop(0).id
    return matched


@dataclass
class _Side:
    """One side's notes as a ledger sees them."""

    system: str
    ticket: Ticket
    target_system: str
    notes: list[Note]
    copies: dict[str, str] = field(default_factory=dict)  # source id -> copy on the other side
    copied: set[str] = field(default_factory=set)  # ids of notes here that are copies


def decide_adoption(
    conn: ConnectionConfig,
    psa_ticket: Ticket,
    psa_notes: list[Note],
    vendor_ticket: Ticket,
    vendor_notes: list[Note],
    link_id: int,
    *,
    psa_label: str,
    vendor_label: str,
    secret: str,
    now: datetime,
) -> tuple[Plan, AdoptedNotes]:
    """The ledger entries and history of an adopted link (see the module's docstring);
    the plan queues no write and no hint."""
    psa = _Side(conn.psa, psa_ticket, conn.vendor, psa_notes)
    vendor = _Side(conn.vendor, vendor_ticket, conn.psa, vendor_notes)
    psa.copies = match_copies(
        psa_notes,
        vendor_notes,
        lambda n: decide.render_for_vendor(n, psa_label, psa_ticket.ref.label),
    )
    vendor.copies = match_copies(
        vendor_notes,
        psa_notes,
        lambda n: decide.render_for_psa(n, vendor_label, vendor_ticket.ref.label),
    )
    vendor.copied = set(psa.copies.values())
    psa.copied = set(vendor.copies.values())

    def event(kind: str, system: str, ticket: Ticket, at: datetime | None, **kw: Any) -> Event:
        return Event(kind, now, link_id, conn.name, system, ticket.ref.id, at, kw)

    ledger: list[LedgerEntry] = []
    history: list[Event] = []
    matched = seen = ours = 0
    for side in (psa, vendor):
        for note in sorted(side.notes, key=note_order):
            key = note_key(side.system, side.ticket.ref.id, note.id, side.target_system)

            def entry(
                state: str,
                reason: str | None,
                copy: str | None = None,
                note: Note = note,
                side: _Side = side,
                key: str = key,
            ) -> LedgerEntry:
                return LedgerEntry(
                    link_id,
                    side.system,
                    note.id,
                    note.created_at,
                    side.target_system,
                    key,
                    state,
                    now,
                    reason,
                    copy,
                )

            if note.id in side.copied or decide.is_echo(note, secret):
                ledger.append(entry("skipped", "echo"))
                ours += 1
                continue
            copy = side.copies.get(note.id)
            if copy is not None:
                ledger.append(entry("done", BACKFILL, copy))
                matched += 1
            else:
                ledger.append(entry("skipped", BACKFILL))
                seen += 1
            if side is vendor:  # the vendor's own action: SLA clocks and rules read it
                public = note.visibility is Visibility.PUBLIC
                history.append(
                    event(
                        "vendor_note",
                        conn.vendor,
                        vendor_ticket,
                        note.created_at,
                        note_id=note.id,
                        visibility=note.visibility.value,
                        author=note.author,
                        excerpt=note.text[:EXCERPT] if public else None,
                    )
                )
    created = event(
        "link_created",
        conn.psa,
        psa_ticket,
        psa_ticket.updated_at,
        origin="manual",
        vendor_ticket=vendor_ticket.ref.label,
        opened_by=psa_ticket.updated_by,
        backfill=True,
    )
    first_read = event(
        VENDOR_SEEN,
        conn.vendor,
        vendor_ticket,
        vendor_ticket.created_at or vendor_ticket.updated_at,
        number=vendor_ticket.ref.number,
        priority=vendor_ticket.priority,
    )
    events = [created, first_read]
    if vendor_ticket.status is not None:
        events.append(
            event(
                "vendor_status_changed",
                conn.vendor,
                vendor_ticket,
                vendor_ticket.updated_at,
                old=None,
                new=vendor_ticket.status,
                by_us=False,
                status_class=vendor_ticket.status_class.value,
            )
        )
    # history sorted by when it happened, as a first read would have recorded it
    events.extend(sorted(history, key=lambda e: e.occurred_at or now))
    events.append(event(ADOPTED, conn.psa, psa_ticket, None, notes_by_us=ours, backfill=True))
    counts = AdoptedNotes(matched=matched, seen=seen, ours=ours)
    return Plan(ledger=tuple(ledger), events=tuple(events)), counts
