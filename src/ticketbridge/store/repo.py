"""Repository functions: every query the engine makes, on a connection inside a transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.rows import EventRow, InboxRow, LedgerRow, LinkRow, OutboxRow, from_row
from ticketbridge.store.tables import cursors, events, inbox, installation, ledger, links, outbox
from ticketbridge.store.upsert import insert_ignore, upsert

__all__ = [
    "CursorState",
    "NewHint",
    "add_event",
    "add_hint",
    "add_hints",
    "claim_outbox",
    "enqueue",
    "get_cursor",
    "get_link",
    "link_by_id",
    "links_for_vendor",
    "save_cursor",
]

# -- links -------------------------------------------------------------------------


def get_link(conn: Connection, connection: str, psa_ticket_id: str) -> LinkRow | None:
    row = conn.execute(
        sa.select(links).where(
            links.c.connection == connection, links.c.psa_ticket_id == psa_ticket_id
        )
    ).first()
    return None if row is None else from_row(LinkRow, row)


def link_by_id(conn: Connection, link_id: int) -> LinkRow | None:
    row = conn.execute(sa.select(links).where(links.c.id == link_id)).first()
    return None if row is None else from_row(LinkRow, row)


def links_for_vendor(conn: Connection, vendor_system: str, vendor_ticket_id: str) -> list[LinkRow]:
    return [
        from_row(LinkRow, row)
        for row in conn.execute(
            sa.select(links)
            .where(
                links.c.vendor_system == vendor_system, links.c.vendor_ticket_id == vendor_ticket_id
            )
            .order_by(links.c.id)
        )
    ]


def insert_link(conn: Connection, **values: Any) -> int:
    """Insert a link; its id.

    Two writers linking the same PSA ticket in one connection race on the unique
    (connection, psa_ticket_id): the loser's whole decision must roll back (it decided on
    a state that no longer holds), so this raises ``IntegrityError`` rather than ignoring.
    """
    result = conn.execute(sa.insert(links).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_link(conn: Connection, link_id: int, **values: Any) -> None:
    conn.execute(sa.update(links).where(links.c.id == link_id).values(**values))


def open_link_ids(conn: Connection, *, after: int, limit: int) -> list[int]:
    rows = conn.execute(
        sa.select(links.c.id)
        .where(links.c.state.in_(("open", "watching")), links.c.id > after)
        .order_by(links.c.id)
        .limit(limit)
    )
    return [r[0] for r in rows]


def list_links(conn: Connection, *, state: str | None = None) -> list[LinkRow]:
    query = sa.select(links).order_by(links.c.id)
    if state is not None:
        query = query.where(links.c.state == state)
    return [from_row(LinkRow, row) for row in conn.execute(query)]


# -- ledger ------------------------------------------------------------------------


def ledger_note_ids(conn: Connection, link_id: int, source_system: str) -> set[str]:
    rows = conn.execute(
        sa.select(ledger.c.source_note_id).where(
            ledger.c.link_id == link_id, ledger.c.source_system == source_system
        )
    )
    return {r[0] for r in rows}


def ledger_target_ids(conn: Connection, link_id: int, target_system: str) -> set[str]:
    rows = conn.execute(
        sa.select(ledger.c.target_note_id).where(
            ledger.c.link_id == link_id,
            ledger.c.target_system == target_system,
            ledger.c.target_note_id.is_not(None),
        )
    )
    return {r[0] for r in rows}


def insert_ledger(conn: Connection, **values: Any) -> bool:
    """Record a note's fate unless that note (or its key) is already recorded; True if new."""
    return insert_ignore(conn, ledger, values)


def ledger_done(conn: Connection, key: str, target_note_id: str | None, now: datetime) -> None:
    conn.execute(
        sa.update(ledger)
        .where(ledger.c.key == key)
        .values(state="done", target_note_id=target_note_id, done_at=now)
    )


def ledger_dead(conn: Connection, key: str) -> None:
    conn.execute(sa.update(ledger).where(ledger.c.key == key).values(state="dead"))


def ledger_rows(conn: Connection, link_id: int) -> list[LedgerRow]:
    query = sa.select(ledger).where(ledger.c.link_id == link_id).order_by(ledger.c.id)
    return [from_row(LedgerRow, row) for row in conn.execute(query)]


# -- outbox ------------------------------------------------------------------------

OPEN_STATES = ("pending", "sending", "dead")


def enqueue(
    conn: Connection,
    *,
    link_id: int,
    target_system: str,
    operation: str,
    key: str,
    payload: Mapping[str, Any],
    now: datetime,
    source_at: datetime | None = None,
    uncertain: bool = False,
) -> bool:
    """Queue a write unless one with the same key exists; True when queued.

    ``uncertain``: the target may already hold it (looked up before it is written)."""
    return insert_ignore(
        conn,
        outbox,
        {
            "link_id": link_id,
            "target_system": target_system,
            "operation": operation,
            "key": key,
            "payload": dict(payload),
            "state": "pending",
            "attempts": 0,
            "uncertain": uncertain,
            "next_attempt_at": now,
            "source_at": source_at,
            "created_at": now,
        },
        on=["key"],
    )


def claim_outbox(
    conn: Connection, now: datetime, *, limit: int, lease: timedelta, postgres: bool
) -> list[OutboxRow]:
    """Claim due writes, at most one per (link, target) and only the oldest open one of each.

    A row is due when pending and its time has come, or when it was being sent and
    its lease ran out (the sender died): that one is uncertain.
    """
    earlier = outbox.alias("earlier")
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.link_id == outbox.c.link_id,
            earlier.c.target_system == outbox.c.target_system,
            earlier.c.id < outbox.c.id,
            earlier.c.state.in_(OPEN_STATES),
        )
        .exists()
    )
    query = (
        sa.select(outbox)
        .where(
            sa.or_(
                sa.and_(outbox.c.state == "pending", outbox.c.next_attempt_at <= now),
                sa.and_(outbox.c.state == "sending", outbox.c.lease_until < now),
            ),
            ~blocked,
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True, of=outbox)
    rows = list(conn.execute(query))
    claimed = []
    for row in rows:
        uncertain = bool(row.uncertain) or row.state == "sending"
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == row.id)
            .values(
                state="sending",
                attempts=row.attempts + 1,
                uncertain=uncertain,
                lease_until=now + lease,
            )
        )
        fresh = conn.execute(sa.select(outbox).where(outbox.c.id == row.id)).one()
        claimed.append(from_row(OutboxRow, fresh))
    return claimed


def outbox_done(conn: Connection, row_id: int, now: datetime) -> None:
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id)
        .values(state="done", done_at=now, lease_until=None, last_error=None)
    )


def outbox_retry(
    conn: Connection, row_id: int, *, at: datetime, error: str, uncertain: bool
) -> None:
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id)
        .values(
            state="pending",
            next_attempt_at=at,
            last_error=error[:2000],
            lease_until=None,
            uncertain=uncertain,
        )
    )


def outbox_dead(conn: Connection, row_id: int, *, error: str) -> None:
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id)
        .values(
            state="dead",
            last_error=error[:2000],
            lease_until=None,
        )
    )


def outbox_recover(conn: Connection) -> int:
    """At start with the single-writer lock held: writes left 'sending' by a dead process
    are due again, and uncertain (they may have reached the target)."""
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.state == "sending")
        .values(state="pending", uncertain=True, lease_until=None)
    )
    return int(result.rowcount or 0)


def outbox_look_up_first(conn: Connection) -> int:
    """At start: every queued write is looked up on its target before it is sent (a
    restored store may hold writes that were made after its backup was taken)."""
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.state == "pending", outbox.c.uncertain.is_(False))
        .values(uncertain=True)
    )
    return int(result.rowcount or 0)


def outbox_depth(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state))
    return {state: int(count) for state, count in rows}


def outbox_rows(conn: Connection, *, states: Sequence[str] | None = None) -> list[OutboxRow]:
    query = sa.select(outbox).order_by(outbox.c.id)
    if states:
        query = query.where(outbox.c.state.in_(states))
    return [from_row(OutboxRow, row) for row in conn.execute(query)]


def outbox_requeue(conn: Connection, row_id: int, now: datetime) -> bool:
    """Put a dead-lettered write back in line (``ticketbridge outbox retry``)."""
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id, outbox.c.state == "dead")
        .values(state="pending", next_attempt_at=now, attempts=0)
    )
    return bool(result.rowcount)


def outbox_cancel(conn: Connection, row_id: int) -> bool:
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id, outbox.c.state.in_(("dead", "pending")))
        .values(state="cancelled")
    )
    return bool(result.rowcount)


# -- inbox -------------------------------------------------------------------------


def add_hint(
    conn: Connection, *, system: str, delivery_key: str, ticket_id: str, now: datetime
) -> bool:
    """Record a verified webhook; False when this delivery was already recorded."""
    return insert_ignore(
        conn,
        inbox,
        {
            "system": system,
            "delivery_key": delivery_key,
            "ticket_id": ticket_id,
            "state": "pending",
            "attempts": 0,
            "received_at": now,
        },
        on=["system", "delivery_key"],
    )


@dataclass(frozen=True)
class NewHint:
    """A verified webhook delivery to record."""

    system: str
    delivery_key: str
    ticket_id: str
    received_at: datetime


def add_hints(conn: Connection, hints: Sequence[NewHint]) -> list[bool]:
    """Record several deliveries in order; for each, False when it was already recorded."""
    return [
        add_hint(
            conn,
            system=h.system,
            delivery_key=h.delivery_key,
            ticket_id=h.ticket_id,
            now=h.received_at,
        )
        for h in hints
    ]


def pending_hints(conn: Connection, *, limit: int) -> list[InboxRow]:
    query = sa.select(inbox).where(inbox.c.state == "pending").order_by(inbox.c.id).limit(limit)
    return [from_row(InboxRow, row) for row in conn.execute(query)]


def hints_done(conn: Connection, ids: Iterable[int], now: datetime) -> None:
    ids = list(ids)
    if ids:
        conn.execute(
            sa.update(inbox).where(inbox.c.id.in_(ids)).values(state="done", processed_at=now)
        )


def hint_failed(conn: Connection, hint_id: int) -> None:
    conn.execute(
        sa.update(inbox).where(inbox.c.id == hint_id).values(attempts=inbox.c.attempts + 1)
    )


def inbox_count(conn: Connection, *, state: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(inbox)
    if state:
        query = query.where(inbox.c.state == state)
    return int(conn.execute(query).scalar_one())


# -- cursors -----------------------------------------------------------------------


@dataclass(frozen=True)
class CursorState:
    position: datetime | None
    seen: dict[str, str]


def get_cursor(conn: Connection, system: str) -> CursorState:
    row = conn.execute(sa.select(cursors).where(cursors.c.system == system)).first()
    if row is None:
        return CursorState(None, {})
    return CursorState(row.position, dict(row.seen or {}))


def save_cursor(conn: Connection, system: str, state: CursorState, now: datetime) -> None:
    values = {"system": system, "position": state.position, "seen": state.seen, "updated_at": now}
    upsert(conn, cursors, values, on=["system"])


# -- events ------------------------------------------------------------------------


def add_event(
    conn: Connection,
    kind: str,
    *,
    now: datetime,
    link_id: int | None = None,
    connection: str | None = None,
    system: str | None = None,
    ticket_id: str | None = None,
    occurred_at: datetime | None = None,
    **detail: Any,
) -> None:
    conn.execute(
        sa.insert(events).values(
            link_id=link_id,
            connection=connection,
            system=system,
            ticket_id=ticket_id,
            kind=kind,
            detail=detail,
            occurred_at=occurred_at,
            recorded_at=now,
        )
    )


def has_event(conn: Connection, link_id: int, kind: str) -> bool:
    return (
        conn.execute(
            sa.select(events.c.id)
            .where(events.c.link_id == link_id, events.c.kind == kind)
            .limit(1)
        ).first()
        is not None
    )


def link_events(conn: Connection, link_id: int) -> list[EventRow]:
    query = sa.select(events).where(events.c.link_id == link_id).order_by(events.c.id)
    return [from_row(EventRow, row) for row in conn.execute(query)]


def installation_value(conn: Connection, name: str, default: str, now: datetime) -> str:
    """The installation setting ``name``, stored as ``default`` the first time it is asked
    for (a concurrent process that stored it first wins)."""
    insert_ignore(conn, installation, {"name": name, "value": default, "created_at": now})
    value = conn.execute(
        sa.select(installation.c.value).where(installation.c.name == name)
    ).scalar_one()
    return str(value)
