"""Reading what a decision about a linked ticket needs, and writing the plan it makes.

:func:`linked_for_psa` / :func:`linked_for_vendor` read a ticket's links with the note
ledger keys and history facts the decision needs, in a few statements; :func:`apply_plan`
writes a :class:`~ticketbridge.plan.Plan` in the caller's transaction.  Both run
on a connection inside one transaction, so a decision and its writes are atomic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ticketbridge.store import repo
from ticketbridge.store.rows import LinkRow, from_row
from ticketbridge.store.tables import events, ledger, links, outbox

if TYPE_CHECKING:
    from ticketbridge.plan import NewLink, OutboxEntry, Plan

__all__ = [
    "Applied",
    "LinkedTicket",
    "apply_plan",
    "linked_for_psa",
    "linked_for_vendor",
    "notes_seen_until",
    "put_link",
]

#: A decision reads the ledger rows of the notes it was given when they are at most
#: this many (an incremental read); of all the link's notes otherwise.
_FEW_NOTES = 500

#: The history entry that records the first read of a linked vendor ticket.
VENDOR_SEEN = "vendor_ticket_seen"


@dataclass(frozen=True, slots=True)
class LinkedTicket:
    """A link, as a decision about one side of it needs it.

    ``known``: ids of that side's notes already in the ledger; ``ours``: ids of notes on
    that side that ticketbridge wrote (mirrors); ``vendor_seen``: the vendor ticket's
    first read is already recorded.
    """

    link: LinkRow
    known: frozenset[str] = frozenset()
    ours: frozenset[str] = frozenset()
    vendor_seen: bool = False


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a plan did: how many outbox rows were new (not already queued)."""

    queued: int


def _ledger_ids(
    c: Connection, link_ids: Sequence[int], side: str, note_ids: Sequence[str] | None = None
) -> dict[int, tuple[set[str], set[str]]]:
    """Per link: (source note ids of ``side``, target note ids on ``side``), one query;
    with ``note_ids`` (the notes just read), only those."""
    out: dict[int, tuple[set[str], set[str]]] = {i: (set(), set()) for i in link_ids}
    if not link_ids:
        return out
    if note_ids is not None and len(note_ids) <= _FEW_NOTES:
        if not note_ids:
            return out
        which = sa.or_(
            sa.and_(ledger.c.source_system == side, ledger.c.source_note_id.in_(note_ids)),
            sa.and_(ledger.c.target_system == side, ledger.c.target_note_id.in_(note_ids)),
        )
    else:
        which = sa.or_(ledger.c.source_system == side, ledger.c.target_system == side)
    rows = c.execute(
        sa.select(
            ledger.c.link_id,
            ledger.c.source_system,
            ledger.c.source_note_id,
            ledger.c.target_system,
            ledger.c.target_note_id,
        ).where(ledger.c.link_id.in_(link_ids), which)
    )
    for link_id, source, note_id, target, target_note_id in rows:
        known, ours = out[link_id]
        if source == side:
            known.add(note_id)
        if target == side and target_note_id is not None:
            ours.add(target_note_id)
    return out


def _bundle(
    c: Connection,
    found: Sequence[LinkRow],
    side: str,
    seen: set[int] | None = None,
    note_ids: Sequence[str] | None = None,
) -> list[LinkedTicket]:
    ids = _ledger_ids(c, [link.id for link in found], side, note_ids)
    return [
        LinkedTicket(
            link,
            frozenset(ids[link.id][0]),
            frozenset(ids[link.id][1]),
            vendor_seen=seen is not None and link.id in seen,
        )
        for link in found
    ]


def linked_for_psa(
    c: Connection,
    connections: Sequence[str],
    psa_ticket_id: str,
    note_ids: Sequence[str] | None = None,
) -> dict[str, LinkedTicket | None]:
    """A PSA ticket's link in each of ``connections`` (``None``: none yet), with the
    ledger keys of the PSA side (of ``note_ids`` only, when given: the notes read)."""
    rows = c.execute(
        sa.select(links).where(
            links.c.connection.in_(connections), links.c.psa_ticket_id == psa_ticket_id
        )
    )
    found = [from_row(LinkRow, row) for row in rows]
    by_conn: dict[str, LinkedTicket | None] = dict.fromkeys(connections)
    for item in _bundle(c, found, found[0].psa_system if found else "", note_ids=note_ids):
        by_conn[item.link.connection] = item
    return by_conn


def linked_for_vendor(
    c: Connection,
    vendor_system: str,
    vendor_ticket_id: str,
    note_ids: Sequence[str] | None = None,
) -> list[LinkedTicket]:
    """Every link to a vendor ticket, oldest first, with the ledger keys of the vendor
    side (of ``note_ids`` only, when given) and whether the vendor ticket's first read
    is recorded."""
    found = repo.links_for_vendor(c, vendor_system, vendor_ticket_id)
    if not found:
        return []
    seen = {
        row[0]
        for row in c.execute(
            sa.select(events.c.link_id)
            .where(events.c.link_id.in_([link.id for link in found]), events.c.kind == VENDOR_SEEN)
            .distinct()
        )
    }
    return _bundle(c, found, vendor_system, seen, note_ids)


def notes_seen_until(c: Connection, link_ids: Sequence[int], side: str) -> datetime | None:
    """The creation time of the newest ``side`` note the ledger holds for any of
    ``link_ids``, or ``None`` if one of them holds none (its notes are read whole)."""
    if not link_ids:
        return None
    rows = c.execute(
        sa.select(ledger.c.link_id, sa.func.max(ledger.c.source_created_at))
        .where(ledger.c.link_id.in_(link_ids), ledger.c.source_system == side)
        .group_by(ledger.c.link_id)
    ).all()
    if len(rows) < len(set(link_ids)) or any(row[1] is None for row in rows):
        return None
    return min(_utc(row[1]) for row in rows)


def _insert_ignore_many(
    c: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    on: Sequence[str] | None = None,
    returning: sa.Column[Any] | None = None,
) -> list[Any]:
    """Insert ``rows`` in order in one statement, skipping those a unique constraint (or
    the ``on`` columns) already holds; the ``returning`` values of the rows inserted."""
    dialect = postgresql if c.dialect.name == "postgresql" else sqlite
    elements = list(on) if on is not None else None
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=elements)
    if returning is None:
        c.execute(stmt, list(rows))
        return []
    result = c.execute(stmt.returning(returning), list(rows))
    return list(result.scalars())


def _outbox_values(row: OutboxEntry) -> dict[str, Any]:
    """The outbox row of a planned write, exactly as :func:`repo.enqueue` stores it."""
    return {
        "link_id": row.link_id,
        "target_system": row.target_system,
        "operation": row.operation.op,
        "key": row.key,
        "payload": dict(row.operation.to_json()),
        "state": "pending",
        "attempts": 0,
        "uncertain": row.lookup,
        "next_attempt_at": row.now,
        "source_at": row.source_at,
        "created_at": row.now,
    }


def put_link(c: Connection, new: NewLink) -> int:
    """Store a new link (or upgrade a watching one in place); its id.

    A concurrent writer that linked the same ticket first makes the insert raise
    ``IntegrityError``, so the whole decision rolls back (see :func:`repo.insert_link`).
    """
    if new.upgrade is None:
        return repo.insert_link(c, **new.values)
    values = {k: v for k, v in new.values.items() if k != "created_at"}
    repo.update_link(c, new.upgrade, **values)
    return new.upgrade


def apply_plan(c: Connection, plan: Plan) -> Applied:
    """Write ``plan`` in the caller's transaction, each part in its decided order.

    Ledger entries and outbox rows are ``INSERT … ON CONFLICT DO NOTHING`` on their keys
    (one statement per table), so a concurrent writer that decided the same note first
    wins and nothing doubles; events are one multi-row insert.
    """
    for update in plan.link_updates:
        repo.update_link(c, update.link_id, **update.values)
    if plan.ledger:
        _insert_ignore_many(c, ledger, [entry.values() for entry in plan.ledger])
    queued = 0
    if plan.outbox:
        rows = [_outbox_values(row) for row in plan.outbox]
        queued = len(_insert_ignore_many(c, outbox, rows, on=["key"], returning=outbox.c.key))
    if plan.events:
        c.execute(
            sa.insert(events),
            [
                {
                    "link_id": e.link_id,
                    "connection": e.connection,
                    "system": e.system,
                    "ticket_id": e.ticket_id,
                    "kind": e.kind,
                    "detail": dict(e.detail),
                    "occurred_at": e.occurred_at,
                    "recorded_at": e.now,
                }
                for e in plan.events
            ],
        )
    for hint in plan.hints:
        repo.add_hint(
            c,
            system=hint.system,
            delivery_key=hint.delivery_key,
            ticket_id=hint.ticket_id,
            now=hint.now,
        )
    return Applied(queued)


def _utc(value: datetime) -> datetime:
    """A stored time as an aware UTC time."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
