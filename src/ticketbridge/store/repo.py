"""Repository functions: every query the engine makes, on a connection inside a transaction."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ticketbridge.errors import StoreError
from ticketbridge.store.rows import EventRow, InboxRow, LedgerRow, LinkRow, OutboxRow, from_row
from ticketbridge.store.tables import cursors, events, inbox, installation, ledger, links, outbox
from ticketbridge.store.upsert import insert_ignore, upsert

__all__ = [
    "ClaimLostError",
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
    conn.execute(_LEDGER_DONE, {"b_key": key, "b_target": target_note_id, "b_now": now})


#: ``ledger_done``'s statement, built once (every mirrored note runs it).
_LEDGER_DONE = (
    sa.update(ledger)
    .where(ledger.c.key == sa.bindparam("b_key"))
    .values(state="done", target_note_id=sa.bindparam("b_target"), done_at=sa.bindparam("b_now"))
)


def ledger_dead(conn: Connection, key: str) -> None:
    conn.execute(sa.update(ledger).where(ledger.c.key == key).values(state="dead"))


def ledger_rows(conn: Connection, link_id: int) -> list[LedgerRow]:
    query = sa.select(ledger).where(ledger.c.link_id == link_id).order_by(ledger.c.id)
    return [from_row(LedgerRow, row) for row in conn.execute(query)]


# -- outbox ------------------------------------------------------------------------

OPEN_STATES = ("pending", "sending", "dead")

#: The operation of notifications (rule e-mails and chat messages).  They are not part of
#: any ticket's ordered stream: they wait on nothing and nothing waits on them.
UNORDERED_OPERATIONS = ("notify",)


class ClaimLostError(StoreError):
    """This process no longer owns the outbox row it is completing.

    Its lease ran out and another claim took the row (another replica, or this process
    after a long pause): whatever this process was about to record must not be recorded.
    Raised inside the caller's transaction, so all of it (ledger, link, follow-up rows)
    rolls back.
    """

    def __init__(self, row_id: int) -> None:
        self.row_id = row_id
        super().__init__(f"outbox row {row_id} is no longer owned by this claim")


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


def _blocked_by_earlier(row: sa.FromClause = outbox) -> sa.Exists:
    """An earlier open row of the same (link, target) as ``row`` exists; notifications never
    count."""
    earlier = outbox.alias("earlier")
    return (
        sa.select(earlier.c.id)
        .where(
            earlier.c.link_id == row.c.link_id,
            earlier.c.target_system == row.c.target_system,
            earlier.c.id < row.c.id,
            _inline_in(earlier.c.state, OPEN_STATES, "open_states"),
            earlier.c.operation.not_in(UNORDERED_OPERATIONS),
        )
        .exists()
    )


def _inline_in(
    column: sa.ColumnElement[str], values: Sequence[str], name: str
) -> sa.ColumnElement[bool]:
    """``column IN ('a', 'b')`` with the values written into the SQL (not bound): the form
    in which the database matches a partial index's condition (``tables.OUTBOX_OPEN``)."""
    return column.in_(sa.bindparam(name, list(values), expanding=True, literal_execute=True))


@functools.cache
def _claim_statement(postgres: bool) -> sa.Update:
    """The claim, built once: one ``UPDATE ... WHERE id IN (due rows) RETURNING`` whose
    values are bound at execution (``now``, ``lease_until``, ``token``, ``limit``)."""
    due = outbox.alias("due")
    now = sa.bindparam("b_now", type_=outbox.c.next_attempt_at.type)
    chosen = (
        sa.select(due.c.id)
        .where(
            sa.or_(
                sa.and_(due.c.state == "pending", due.c.next_attempt_at <= now),
                sa.and_(due.c.state == "sending", due.c.lease_until < now),
            ),
            sa.or_(due.c.operation.in_(UNORDERED_OPERATIONS), ~_blocked_by_earlier(due)),
        )
        .order_by(due.c.id)
        .limit(sa.bindparam("b_limit", type_=sa.Integer()))
    )
    if postgres:
        chosen = chosen.with_for_update(skip_locked=True, of=due)
    return (
        sa.update(outbox)
        .where(outbox.c.id.in_(chosen.scalar_subquery()))
        .values(
            state="sending",
            attempts=outbox.c.attempts + 1,
            uncertain=sa.or_(outbox.c.uncertain, outbox.c.state == "sending"),
            lease_until=sa.bindparam("b_lease_until", type_=outbox.c.lease_until.type),
            claim_token=sa.bindparam("b_token", type_=outbox.c.claim_token.type),
        )
        .returning(*outbox.c)
    )


def claim_outbox(
    conn: Connection, now: datetime, *, limit: int, lease: timedelta, postgres: bool
) -> list[OutboxRow]:
    """Claim due writes, at most one per (link, target) and only the oldest open one of each.

    A row is due when pending and its time has come, or when it was being sent and
    its lease ran out (the sender died): that one is uncertain.  Notifications are
    claimed whenever due: they are ordered after nothing and hold nothing up.

    Each claimed row gets a fresh ``claim_token``: completing, retrying or dead-lettering
    it later requires that token (:class:`ClaimLostError` otherwise).  One statement for
    the whole claim (PostgreSQL: the due rows locked with ``SKIP LOCKED``, so concurrent
    claims take different rows); the token is this claim's (a row is claimed by one claim
    at a time, and every later claim of it makes a new token).
    """
    claimed = conn.execute(
        _claim_statement(postgres),
        {
            "b_now": now,
            "b_limit": limit,
            "b_lease_until": now + lease,
            "b_token": uuid.uuid4().hex,
        },
    )
    return sorted((from_row(OutboxRow, row) for row in claimed), key=lambda row: row.id)


def links_by_id(conn: Connection, link_ids: Iterable[int]) -> dict[int, LinkRow]:
    """The links of ``link_ids`` (those that exist), by id; one statement."""
    wanted = sorted(set(link_ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(links).where(links.c.id.in_(wanted)))
    return {row.id: from_row(LinkRow, row) for row in rows}


def _owned(row_id: int, token: str | None) -> sa.ColumnElement[bool]:
    return sa.and_(
        outbox.c.id == row_id, outbox.c.claim_token == token, outbox.c.state == "sending"
    )


def _update_owned(conn: Connection, row_id: int, token: str | None, **values: Any) -> None:
    result = conn.execute(sa.update(outbox).where(_owned(row_id, token)).values(**values))
    if result.rowcount != 1:
        raise ClaimLostError(row_id)


#: ``outbox_done``'s statement, built once (every success runs it).
_DONE = (
    sa.update(outbox)
    .where(
        outbox.c.id == sa.bindparam("b_id"),
        outbox.c.claim_token == sa.bindparam("b_token"),
        outbox.c.state == "sending",
    )
    .values(state="done", done_at=sa.bindparam("b_now"), lease_until=None, last_error=None)
)


def outbox_done(conn: Connection, row_id: int, now: datetime, *, token: str | None) -> None:
    """Record the write as done; :class:`ClaimLostError` unless ``token`` still owns it."""
    result = conn.execute(_DONE, {"b_id": row_id, "b_token": token, "b_now": now})
    if result.rowcount != 1:
        raise ClaimLostError(row_id)


def outbox_retry(
    conn: Connection,
    row_id: int,
    *,
    at: datetime,
    error: str,
    uncertain: bool,
    token: str | None,
) -> None:
    """Put the write back in line for ``at``; :class:`ClaimLostError` unless owned."""
    _update_owned(
        conn,
        row_id,
        token,
        state="pending",
        next_attempt_at=at,
        last_error=error[:2000],
        lease_until=None,
        uncertain=uncertain,
    )


def outbox_dead(conn: Connection, row_id: int, *, error: str, token: str | None) -> None:
    """Dead-letter the write; :class:`ClaimLostError` unless ``token`` still owns it."""
    _update_owned(conn, row_id, token, state="dead", last_error=error[:2000], lease_until=None)


def outbox_renew(
    conn: Connection, row_id: int, *, token: str | None, now: datetime, lease: timedelta
) -> datetime | None:
    """Right before sending: extend the lease of a row this claim still owns and whose
    lease has not run out; its new end, or ``None`` when the row is no longer ours."""
    until = now + lease
    result = conn.execute(
        sa.update(outbox)
        .where(_owned(row_id, token), outbox.c.lease_until > now)
        .values(lease_until=until)
    )
    return until if result.rowcount == 1 else None


def outbox_recover(conn: Connection) -> int:
    """At start with the single-writer lock held: writes left 'sending' by a dead process
    are due again, and uncertain (they may have reached the target)."""
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.state == "sending")
        .values(state="pending", uncertain=True, lease_until=None, claim_token=None)
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


def outbox_blockers(conn: Connection, rows: Sequence[OutboxRow]) -> dict[int, OutboxRow]:
    """For each of ``rows`` held back by an earlier open row of its (link, target), that
    earlier row (the oldest one: the head of the line), by the waiting row's id."""
    found: dict[int, OutboxRow] = {}
    for row in rows:
        if row.operation in UNORDERED_OPERATIONS or row.state not in ("pending", "sending"):
            continue
        head = conn.execute(
            sa.select(outbox)
            .where(
                outbox.c.link_id == row.link_id,
                outbox.c.target_system == row.target_system,
                outbox.c.id < row.id,
                outbox.c.state.in_(OPEN_STATES),
                outbox.c.operation.not_in(UNORDERED_OPERATIONS),
            )
            .order_by(outbox.c.id)
            .limit(1)
        ).first()
        if head is not None:
            found[row.id] = from_row(OutboxRow, head)
    return found


def outbox_requeue(conn: Connection, row_id: int, now: datetime) -> bool:
    """Put a dead-lettered write back in line (``ticketbridge outbox retry``)."""
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id, outbox.c.state == "dead")
        .values(state="pending", next_attempt_at=now, attempts=0, deadline_from=now)
    )
    return bool(result.rowcount)


def outbox_cancel(conn: Connection, row_id: int) -> bool:
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id, outbox.c.state.in_(("dead", "pending")))
        .values(state="cancelled")
    )
    return bool(result.rowcount)


def outbox_row(conn: Connection, row_id: int) -> OutboxRow | None:
    """One outbox row by id (``outbox retry``/``cancel`` telling "not found" from "in the
    wrong state")."""
    row = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).first()
    return None if row is None else from_row(OutboxRow, row)


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
    """Record several deliveries in order, in one statement; for each, False when it was
    already recorded (or is a copy of an earlier one of ``hints``)."""
    if not hints:
        return []
    rows = [
        {
            "system": h.system,
            "delivery_key": h.delivery_key,
            "ticket_id": h.ticket_id,
            "state": "pending",
            "attempts": 0,
            "received_at": h.received_at,
        }
        for h in hints
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(inbox)
        .on_conflict_do_nothing(index_elements=["system", "delivery_key"])
        .returning(inbox.c.system, inbox.c.delivery_key)
    )
    inserted = {(system, key) for system, key in conn.execute(stmt, rows)}
    added = []
    for h in hints:
        key = (h.system, h.delivery_key)
        added.append(key in inserted)
        inserted.discard(key)  # a second copy in the same batch is a duplicate
    return added


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
    """Where a system's poll stands.

    ``position`` is the source time of the latest change processed.  While a backlog
    is read (the last poll stopped at its page limit), ``resume_at``/``resume_after``
    are the keyset of the last change that poll read: the next poll continues right
    after it.
    """

    position: datetime | None
    seen: dict[str, str]
    resume_at: datetime | None = None
    resume_after: str | None = None


#: The key under which the resume keyset is kept in the cursor's ``seen`` JSON, as
#: ``[iso time, ticket id]`` (no ticket id is empty, so it never collides with one).
_RESUME_KEY = ""


def get_cursor(conn: Connection, system: str) -> CursorState:
    row = conn.execute(sa.select(cursors).where(cursors.c.system == system)).first()
    if row is None:
        return CursorState(None, {})
    seen = dict(row.seen or {})
    resume = seen.pop(_RESUME_KEY, None)
    if isinstance(resume, list) and len(resume) == 2:
        at, after = datetime.fromisoformat(str(resume[0])), str(resume[1])
        return CursorState(row.position, seen, at, after)
    return CursorState(row.position, seen)


def save_cursor(conn: Connection, system: str, state: CursorState, now: datetime) -> None:
    seen: dict[str, Any] = dict(state.seen)
    seen.pop(_RESUME_KEY, None)
    if state.resume_at is not None and state.resume_after is not None:
        seen[_RESUME_KEY] = [state.resume_at.isoformat(), state.resume_after]
    values = {"system": system, "position": state.position, "seen": seen, "updated_at": now}
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
    # the values bound at execution: one cached compiled statement for every event
    conn.execute(
        _INSERT_EVENT,
        {
            "link_id": link_id,
            "connection": connection,
            "system": system,
            "ticket_id": ticket_id,
            "kind": kind,
            "detail": detail,
            "occurred_at": occurred_at,
            "recorded_at": now,
        },
    )


_INSERT_EVENT = sa.insert(events)


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
