"""Pure decisions about a linked ticket: notes to mirror, status and priority to carry.

Each function takes the ticket as read (with its notes), the link as stored, the ledger
keys already known for that side, the connection's policy and ``now``, and returns a
:class:`~ticketbridge.plan.Plan`.  No store, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ticketbridge import operations as outbox
from ticketbridge.config import ConnectionConfig
from ticketbridge.domain import Note, Ticket, Visibility, idempotency_key, note_key, note_order
from ticketbridge.engine import decide
from ticketbridge.plan import Event, LedgerEntry, LinkUpdate, NoteCount, OutboxEntry, Plan
from ticketbridge.store.plan import LinkedTicket
from ticketbridge.store.rows import LinkRow

__all__ = [
    "EXCERPT",
    "decide_psa_linked",
    "decide_vendor_linked",
    "mirror_notes",
    "psa_snapshot",
    "sync_fields",
]

#: How much of a vendor's public note the link's history keeps (for client updates).
EXCERPT = 1000


def psa_snapshot(ticket: Ticket) -> dict[str, Any]:
    """What rules need of a PSA ticket, stored on its link."""
    return {
        "number": ticket.ref.number,
        "summary": ticket.summary,
        "queue": ticket.queue,
        "type": ticket.type,
        "subtype": ticket.subtype,
        "group": ticket.group,
        "assignee": ticket.assignee,
        "company": ticket.company,
        "status": ticket.status,
        "priority": ticket.priority,
        "priority_rank": ticket.priority_rank,
        "status_class": ticket.status_class.value,
        "closed": ticket.closed,
        "created_at": ticket.created_at.isoformat() if ticket.created_at else None,
    }


#: Kept with a PSA ticket's snapshot: the ticket's own update time when the snapshot last
#: changed.  A ticket shown older than that (a webhook payload or a listing that arrived
#: late) is read again rather than trusted.
SNAPSHOT_TIME = "ticket_updated_at"


def stamped_snapshot(ticket: Ticket) -> dict[str, Any]:
    """:func:`psa_snapshot` with the ticket's update time (:data:`SNAPSHOT_TIME`)."""
    snap = psa_snapshot(ticket)
    if ticket.updated_at is not None:
        snap[SNAPSHOT_TIME] = ticket.updated_at.isoformat()
    return snap


def snapshot_change(stored: Mapping[str, Any] | None, ticket: Ticket) -> dict[str, Any] | None:
    """The snapshot to store for ``ticket``, or ``None`` when its fields are unchanged
    (a new update time alone is not worth a write)."""
    snap = stamped_snapshot(ticket)
    if stored is not None:
        fields = {k: v for k, v in stored.items() if k != SNAPSHOT_TIME}
        if fields == psa_snapshot(ticket):
            return None
    return snap


def older_than_snapshot(stored: Mapping[str, Any] | None, ticket: Ticket) -> bool:
    """Is ``ticket`` (as a payload or listing showed it) older than the stored snapshot?"""
    when = stored.get(SNAPSHOT_TIME) if stored else None
    if not isinstance(when, str) or ticket.updated_at is None:
        return False
    try:
        return ticket.updated_at < datetime.fromisoformat(when)
    except ValueError:
        return False


def _event(
    kind: str, link: LinkRow, conn: ConnectionConfig, system: str, ticket: Ticket, **kw: Any
) -> Event:
    """A history entry about ``ticket`` on ``system``; ``now`` and ``occurred_at`` in ``kw``."""
    now: datetime = kw.pop("now")
    occurred_at: datetime | None = kw.pop("occurred_at")
    return Event(kind, now, link.id, conn.name, system, ticket.ref.id, occurred_at, kw)


def mirror_notes(
    conn: ConnectionConfig,
    linked: LinkedTicket,
    ticket: Ticket,
    notes: list[Note],
    *,
    to_vendor: bool,
    source_label: str,
    now: datetime,
    secret: str = "",
    look_up_before: datetime | None = None,
) -> Plan:
    """Ledger every new note of one side and queue the ones that cross, in source order.

    Notes already in the ledger are left alone.  Echoes (notes we wrote: by ledger, by
    author or by a marker signed with ``secret``, see :func:`decide.is_echo`) are recorded
    as skipped; the connection's note policy decides what crosses and how visible it is
    on the other side (deny by default).  Vendor notes are also recorded in the link's
    history (the supplier SLA and rules read them).

    Keys name the systems' own identities (see :func:`~ticketbridge.domain.note_key`).
    A note older than the link or than ``look_up_before`` (this process's start), or read
    on the link's first read of the vendor ticket, may already be mirrored (a link
    re-established on a fresh store, a store restored from a backup): its write is looked
    up on the target before it is made.
    """
    link = linked.link
    source, target_system = (conn.psa, conn.vendor) if to_vendor else (conn.vendor, conn.psa)
    direction = "psa_to_vendor" if to_vendor else "vendor_to_psa"
    ledger: list[LedgerEntry] = []
    rows: list[OutboxEntry] = []
    events: list[Event] = []
    counts: list[NoteCount] = []
    for note in sorted(notes, key=note_order):
        if note.id in linked.known:
            continue
        key = note_key(source, ticket.ref.id, note.id, target_system)

        def entry(
            state: str, reason: str | None = None, note: Note = note, key: str = key
        ) -> LedgerEntry:
            return LedgerEntry(
                link.id, source, note.id, note.created_at, target_system, key, state, now, reason
            )

        def event(kind: str, note: Note = note, **detail: Any) -> Event:
            return _event(
                kind,
                link,
                conn,
                source,
                ticket,
                now=now,
                occurred_at=note.created_at,
                note_id=note.id,
                **detail,
            )

        if decide.is_echo(note, secret, linked.ours):
            ledger.append(entry("skipped", "echo"))
            continue
        public = note.visibility is Visibility.PUBLIC
        if not to_vendor:  # the vendor's own action: supplier SLA clocks and rules read it
            events.append(
                event(
                    "vendor_note",
                    visibility=note.visibility.value,
                    author=note.author,
                    # the vendor's public progress, for client updates; private notes stay out
                    excerpt=note.text[:EXCERPT] if public else None,
                )
            )
        if to_vendor:
            target = decide.psa_note_target(conn.notes, note.visibility)
        else:
            target = decide.vendor_note_target(conn.notes, note.visibility)
        if target is None:
            reason = "internal" if to_vendor and not public else "policy"
            ledger.append(entry("skipped", reason))
            events.append(event("note_withheld", reason=reason))
            counts.append(NoteCount(direction, "withheld"))
            continue
        if to_vendor:
            text = decide.render_for_vendor(note, source_label, ticket.ref.label)
        else:
            text = decide.render_for_psa(note, source_label, ticket.ref.label)
        ledger.append(entry("pending"))
        mirror = outbox.AddNote(text, target, source_note_id=note.id)
        adopt = (
            note.created_at < link.created_at
            or (look_up_before is not None and note.created_at < look_up_before)
            or (not to_vendor and not linked.vendor_seen)
        )
        rows.append(
            OutboxEntry(link.id, target_system, mirror, key, now, note.created_at, lookup=adopt)
        )
        events.append(event("note_queued", visibility=target.value))
        counts.append(NoteCount(direction, "mirrored"))
    return Plan(ledger=tuple(ledger), outbox=tuple(rows), events=tuple(events), notes=tuple(counts))


def _update(
    link: LinkRow,
    source: str,
    ticket: Ticket,
    target: str,
    change: dict[str, str],
    why: str,
    now: datetime,
) -> OutboxEntry:
    """A field write to the other side, keyed by the ticket and the change that caused it."""
    key = idempotency_key(source, ticket.ref.id, why, target, "update_ticket")
    return OutboxEntry(link.id, target, outbox.UpdateTicket.of(**change), key, now)


def sync_fields(
    conn: ConnectionConfig, link: LinkRow, ticket: Ticket, *, from_psa: bool, now: datetime
) -> tuple[dict[str, Any], Plan]:
    """Status and priority seen on one side: record them, and carry a change across
    through the connection's maps unless it is the echo of our own write.

    Returns the link's column changes (not yet in the plan) and the plan of events and
    writes.  Nothing is written across while the vendor ticket is still being created.
    """
    side, other = ("psa", "vendor") if from_psa else ("vendor", "psa")
    source, target = (conn.psa, conn.vendor) if from_psa else (conn.vendor, conn.psa)
    status_map = conn.status_map.psa_to_vendor if from_psa else conn.status_map.vendor_to_psa
    priority_map = conn.priority_map.psa_to_vendor if from_psa else conn.priority_map.vendor_to_psa
    can_write = link.state != "creating"  # the vendor ticket exists
    changes: dict[str, Any] = {}
    rows: list[OutboxEntry] = []
    events: list[Event] = []
    seen_status = getattr(link, f"{side}_status")
    if ticket.status != seen_status:
        own = ticket.status is not None and ticket.status == getattr(link, f"{side}_status_written")
        events.append(
            _event(
                f"{side}_status_changed",
                link,
                conn,
                source,
                ticket,
                now=now,
                occurred_at=ticket.updated_at,
                old=seen_status,
                new=ticket.status,
                by_us=own,
                status_class=ticket.status_class.value,
            )
        )
        changes[f"{side}_status"] = ticket.status
        if own:
            changes[f"{side}_status_written"] = None
        else:
            mapped = status_map.get(ticket.status or "")
            if mapped is not None and mapped != getattr(link, f"{other}_status") and can_write:
                why = f"status:{ticket.status}:{ticket.updated_at}"
                rows.append(_update(link, source, ticket, target, {"status": mapped}, why, now))
    seen_priority = getattr(link, f"{side}_priority")
    if ticket.priority != seen_priority:
        changes[f"{side}_priority"] = ticket.priority
        if seen_priority is not None:  # a change, not the first sight of the ticket
            events.append(
                _event(
                    f"{side}_priority_changed",
                    link,
                    conn,
                    source,
                    ticket,
                    now=now,
                    occurred_at=ticket.updated_at,
                    old=seen_priority,
                    new=ticket.priority,
                )
            )
        mapped = priority_map.get(ticket.priority or "")
        if (
            seen_priority is not None
            and mapped is not None
            and mapped != getattr(link, f"{other}_priority")
            and can_write
        ):
            why = f"priority:{ticket.priority}:{ticket.updated_at}"
            rows.append(_update(link, source, ticket, target, {"priority": mapped}, why, now))
    return changes, Plan(outbox=tuple(rows), events=tuple(events))


def decide_psa_linked(
    conn: ConnectionConfig,
    linked: LinkedTicket,
    ticket: Ticket,
    notes: list[Note],
    *,
    psa_label: str,
    now: datetime,
    secret: str = "",
    look_up_before: datetime | None = None,
) -> Plan:
    """A PSA ticket with a link (not only watched): its new notes go to the vendor, its
    status and priority changes are carried across, its snapshot kept, its close noted."""
    link = linked.link
    plan = mirror_notes(
        conn,
        linked,
        ticket,
        notes,
        to_vendor=True,
        source_label=psa_label,
        now=now,
        secret=secret,
        look_up_before=look_up_before,
    )
    changes, fields = sync_fields(conn, link, ticket, from_psa=True, now=now)
    plan += fields
    snap = snapshot_change(link.psa_snapshot, ticket)
    if snap is not None:
        changes["psa_snapshot"] = snap
    if ticket.closed and link.state == "open":
        changes["state"] = "closed"
        closed = _event(
            "psa_ticket_closed",
            link,
            conn,
            conn.psa,
            ticket,
            now=now,
            occurred_at=ticket.updated_at,
        )
        plan += Plan(events=(closed,))
    if changes:
        plan += Plan(link_updates=(LinkUpdate(link.id, {"updated_at": now, **changes}),))
    return plan


def decide_vendor_linked(
    conn: ConnectionConfig,
    linked: LinkedTicket,
    ticket: Ticket,
    notes: list[Note],
    *,
    vendor_label: str,
    now: datetime,
    secret: str = "",
    look_up_before: datetime | None = None,
) -> Plan:
    """A linked vendor ticket: its new notes go to the PSA, its number, assignee, status
    and priority are recorded (and carried across through the maps)."""
    link = linked.link
    plan = mirror_notes(
        conn,
        linked,
        ticket,
        notes,
        to_vendor=False,
        source_label=vendor_label,
        now=now,
        secret=secret,
        look_up_before=look_up_before,
    )
    changes: dict[str, Any] = {}
    events: list[Event] = []
    if link.vendor_number is None and ticket.ref.number:
        changes["vendor_number"] = ticket.ref.number
        if conn.write_back_number and link.origin != "manual":
            # a number the vendor gives later (an e-mail vendor's case number, say): into
            # the PSA ticket as the create-time write-back would have put it (same key)
            key = idempotency_key(conn.vendor, ticket.ref.id, conn.psa, "write_back")
            write_back = outbox.UpdateTicket.of(external_ref=ticket.ref.number)
            plan += Plan(outbox=(OutboxEntry(link.id, conn.psa, write_back, key, now),))
    if not linked.vendor_seen:
        events.append(
            _event(
                "vendor_ticket_seen",
                link,
                conn,
                conn.vendor,
                ticket,
                now=now,
                occurred_at=ticket.created_at or ticket.updated_at,
                number=ticket.ref.number,
                priority=ticket.priority,
            )
        )
    if ticket.assignee != link.vendor_assignee:
        events.append(
            _event(
                "vendor_assigned",
                link,
                conn,
                conn.vendor,
                ticket,
                now=now,
                occurred_at=ticket.updated_at,
                old=link.vendor_assignee,
                new=ticket.assignee,
            )
        )
        changes["vendor_assignee"] = ticket.assignee
    plan += Plan(events=tuple(events))
    more, fields = sync_fields(conn, link, ticket, from_psa=False, now=now)
    changes.update(more)
    plan += fields
    if changes:
        plan += Plan(link_updates=(LinkUpdate(link.id, {"updated_at": now, **changes}),))
    return plan
