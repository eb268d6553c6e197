"""Pure decisions about a PSA ticket without a link: link it, or watch it for rules.

A new link's id is the store's to give, and some keys name it, so linking is two pure
steps around one store call: :func:`new_link` (the row to store), then
:func:`decide_link_created` / :func:`decide_watch_started` with the id it got.  No store,
no I/O, no clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ticketbridge import operations as outbox
from ticketbridge.config import ConnectionConfig
from ticketbridge.domain import Note, Ticket, TicketDraft, idempotency_key, note_key
from ticketbridge.engine.dispatch import LOCAL_HINT
from ticketbridge.engine.mirror import snapshot_change, stamped_snapshot
from ticketbridge.plan import (
    Event,
    Hint,
    LedgerEntry,
    LinkUpdate,
    NewLink,
    OutboxEntry,
    Plan,
)
from ticketbridge.store.rows import LinkRow

__all__ = [
    "ADOPTED",
    "create_key",
    "decide_link_created",
    "decide_watch_started",
    "decide_watching",
    "new_link",
    "watch_link",
]


#: The history entry of a link made for a PSA ticket that already holds notes we wrote:
#: the link is re-established (a fresh or restored store), and what is due at once is
#: adopted as done rather than done again (see ``RuleKeeper.evaluate``).
ADOPTED = "link_adopted"


def create_key(conn: ConnectionConfig, ticket: Ticket) -> str:
    """The idempotency key of the vendor ticket opened for a PSA ticket (the same for a
    link re-established on a fresh store: the dispatcher looks it up before creating)."""
    return idempotency_key(conn.name, conn.psa, ticket.ref.id, "create_ticket")


def _event(kind: str, link_id: int, conn: ConnectionConfig, ticket: Ticket, **kw: Any) -> Event:
    now: datetime = kw.pop("now")
    occurred_at: datetime | None = kw.pop("occurred_at")
    return Event(kind, now, link_id, conn.name, conn.psa, ticket.ref.id, occurred_at, kw)


def new_link(
    conn: ConnectionConfig,
    ticket: Ticket,
    manual_vendor: Ticket | None,
    watching: LinkRow | None,
    now: datetime,
) -> NewLink:
    """The link of a PSA ticket routed to the vendor: open on the vendor ticket typed in
    the PSA (manual), or creating until the vendor ticket exists (routed)."""
    values: dict[str, Any] = {
        "connection": conn.name,
        "psa_system": conn.psa,
        "psa_ticket_id": ticket.ref.id,
        "psa_number": ticket.ref.number,
        "vendor_system": conn.vendor,
        "company": ticket.company,
        "psa_status": ticket.status,
        "psa_priority": ticket.priority,
        "psa_snapshot": stamped_snapshot(ticket),
        "created_at": now,
        "updated_at": now,
    }
    if manual_vendor is not None:
        head: dict[str, Any] = {
            "state": "open",
            "origin": "manual",
            "vendor_ticket_id": manual_vendor.ref.id,
            "vendor_number": manual_vendor.ref.number,
        }
    else:
        head = {"state": "creating", "origin": "routed"}
    return NewLink({**head, **values}, None if watching is None else watching.id)


def decide_link_created(
    conn: ConnectionConfig,
    ticket: Ticket,
    notes: list[Note],
    link_id: int,
    *,
    manual_vendor: Ticket | None,
    draft: TicketDraft | None,
    now: datetime,
) -> Plan:
    """What follows a new link: for a manual one, a hint to read the vendor ticket; for a
    routed one, the vendor ticket's creation (``draft``) queued.  Notes already on the PSA
    ticket are its history (the description carries them): ledgered, never mirrored."""
    rows: tuple[OutboxEntry, ...] = ()
    hints: tuple[Hint, ...] = ()
    if manual_vendor is not None:
        created = _event(
            "link_created",
            link_id,
            conn,
            ticket,
            now=now,
            occurred_at=ticket.updated_at,
            origin="manual",
            vendor_ticket=manual_vendor.ref.label,
            # who typed the vendor's case number into the PSA ticket (a case opened by hand
            # in the vendor's portal, or by e-mail) and when: ``occurred_at``
            opened_by=ticket.updated_by,
        )
        # the vendor's history is read (and mirrored) on its own pass
        delivery = f"{LOCAL_HINT}link:{link_id}"
        hints = (Hint(conn.vendor, delivery, manual_vendor.ref.id, now),)
    else:
        assert draft is not None, "a routed link needs the draft of its vendor ticket"
        at = ticket.created_at or ticket.updated_at
        create = outbox.CreateTicket(draft)
        rows = (OutboxEntry(link_id, conn.vendor, create, create_key(conn, ticket), now, at),)
        created = _event(
            "link_created",
            link_id,
            conn,
            ticket,
            now=now,
            occurred_at=at,
            origin="routed",
            priority=ticket.priority,
            vendor_priority=draft.priority,
        )
    ledger = tuple(
        LedgerEntry(
            link_id,
            conn.psa,
            note.id,
            note.created_at,
            conn.vendor,
            note_key(conn.psa, ticket.ref.id, note.id, conn.vendor),
            "skipped",
            now,
            "before_link",
        )
        for note in notes
    )
    events: tuple[Event, ...] = (created,)
    ours = sum(note.by_us for note in notes)
    if ours:  # we wrote here before: a link re-established on a fresh or restored store
        adopted = _event(
            ADOPTED, link_id, conn, ticket, now=now, occurred_at=None, notes_by_us=ours
        )
        events = (created, adopted)
    return Plan(ledger=ledger, outbox=rows, events=events, hints=hints)


def watch_link(conn: ConnectionConfig, ticket: Ticket, now: datetime) -> NewLink:
    """The link that tracks a PSA ticket for escalation rules before it goes to the vendor."""
    return NewLink(
        {
            "connection": conn.name,
            "psa_system": conn.psa,
            "psa_ticket_id": ticket.ref.id,
            "psa_number": ticket.ref.number,
            "vendor_system": conn.vendor,
            "company": ticket.company,
            "psa_status": ticket.status,
            "psa_priority": ticket.priority,
            "psa_snapshot": stamped_snapshot(ticket),
            "state": "watching",
            "origin": "watched",
            "created_at": now,
            "updated_at": now,
        }
    )


def decide_watch_started(
    conn: ConnectionConfig, ticket: Ticket, link_id: int, now: datetime
) -> Plan:
    """A PSA ticket newly watched: its history says so."""
    started = _event(
        "watch_started",
        link_id,
        conn,
        ticket,
        now=now,
        occurred_at=ticket.created_at or ticket.updated_at,
        queue=ticket.queue,
    )
    return Plan(events=(started,))


def decide_watching(conn: ConnectionConfig, ticket: Ticket, link: LinkRow, now: datetime) -> Plan:
    """A watched PSA ticket read again: keep its snapshot, status and priority current
    (a status change is recorded), and stop watching it once it is closed."""
    changes: dict[str, Any] = {}
    events: list[Event] = []
    snap = snapshot_change(link.psa_snapshot, ticket)
    if snap is not None:
        changes["psa_snapshot"] = snap
    if ticket.status != link.psa_status:
        changes["psa_status"] = ticket.status
        changed = _event(
            "psa_status_changed",
            link.id,
            conn,
            ticket,
            now=now,
            occurred_at=ticket.updated_at,
            old=link.psa_status,
            new=ticket.status,
            by_us=False,
            status_class=ticket.status_class.value,
        )
        events.append(changed)
    if ticket.priority != link.psa_priority:
        changes["psa_priority"] = ticket.priority
        if link.psa_priority is not None:
            events.append(
                _event(
                    "psa_priority_changed",
                    link.id,
                    conn,
                    ticket,
                    now=now,
                    occurred_at=ticket.updated_at,
                    old=link.psa_priority,
                    new=ticket.priority,
                )
            )
    if ticket.closed:
        changes["state"] = "closed"
    updates = (LinkUpdate(link.id, {"updated_at": now, **changes}),) if changes else ()
    return Plan(link_updates=updates, events=tuple(events))
