"""Client service closeouts in the store: the closeout, its tickets, the rules' hold on them,
and the facts its report and KPIs read.

A closeout is ``closing`` until every vendor ticket of the client is confirmed closed, then
``done``.  While closing, the rules skip every link of the client; the links a closeout
covers stay skipped after it (their chains were stopped for good).  A link created later for
a closed-out client is a return: recorded once as a ``closed_out_client_returned`` event.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store import repo
from ticketbridge.store.rows import ClockRow, EventRow, LinkRow, OutboxRow, RuleStateRow, from_row
from ticketbridge.store.tables import (
    closeout_tickets,
    closeouts,
    events,
    ledger,
    links,
    outbox,
    rule_states,
    sla_clocks,
)
from ticketbridge.store.upsert import insert_ignore

__all__ = [
    "OPEN_LINK_STATES",
    "RETURN_EVENT",
    "CloseoutRow",
    "CloseoutSummary",
    "CloseoutTicketRow",
    "add_ticket",
    "cancel_rule_writes",
    "client_counts",
    "client_links",
    "clocks_of",
    "closeout_by_id",
    "covered",
    "finish",
    "first_link_at",
    "held_clause",
    "hold_rules",
    "is_held",
    "latest_closeout",
    "list_closeouts",
    "note_return",
    "outbox_by_key",
    "returns_of",
    "rule_states_of",
    "start_closeout",
    "tickets_of",
    "update_ticket",
]

#: The link states that mean the PSA ticket is still open (``closed``: it is done).
OPEN_LINK_STATES = ("creating", "open", "watching")
#: The event recorded (once per link) when a closed-out client has a new linked ticket.
RETURN_EVENT = "closed_out_client_returned"


@dataclass(frozen=True, slots=True)
class CloseoutRow:
    """One closeout of a client (table ``closeouts``)."""

    id: int
    client: str
    state: str
    reason: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class CloseoutTicketRow:
    """One ticket of a closeout and its outcome (table ``closeout_tickets``)."""

    id: int
    closeout_id: int
    link_id: int
    disposition: str
    state: str
    vendor_status: str | None
    reason: str | None
    updated_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True)
class CloseoutSummary:
    """A closeout with its tickets counted by outcome, for ``closeout list``."""

    closeout: CloseoutRow
    counts: Mapping[str, int]
    returns: int


def client_links(conn: Connection, client: str) -> list[LinkRow]:
    """The client's links whose PSA ticket is still open, oldest first."""
    query = (
        sa.select(links)
        .where(links.c.company == client, links.c.state.in_(OPEN_LINK_STATES))
        .order_by(links.c.id)
    )
    return [from_row(LinkRow, row) for row in conn.execute(query)]


def first_link_at(conn: Connection, client: str) -> datetime | None:
    """When the client's first link was made: the start of its tenure as the store knows it."""
    value: datetime | None = conn.execute(
        sa.select(sa.func.min(links.c.created_at)).where(links.c.company == client)
    ).scalar()  # min() keeps the column's type: an aware UTC datetime
    return value


def links_by_id(conn: Connection, link_ids: Iterable[int]) -> dict[int, LinkRow]:
    return repo.links_by_id(conn, link_ids)


def clocks_of(conn: Connection, link_ids: Collection[int]) -> dict[int, ClockRow]:
    """The SLA clock of each of ``link_ids`` that has one."""
    if not link_ids:
        return {}
    rows = conn.execute(sa.select(sla_clocks).where(sla_clocks.c.link_id.in_(list(link_ids))))
    return {row.link_id: from_row(ClockRow, row) for row in rows}


def rule_states_of(conn: Connection, link_ids: Collection[int]) -> dict[int, RuleStateRow]:
    """The rules' stored progress of each of ``link_ids`` that has any."""
    if not link_ids:
        return {}
    rows = conn.execute(sa.select(rule_states).where(rule_states.c.link_id.in_(list(link_ids))))
    return {row.link_id: from_row(RuleStateRow, row) for row in rows}


def latest_closeout(conn: Connection, client: str) -> CloseoutRow | None:
    """The client's most recent closeout, if any."""
    row = conn.execute(
        sa.select(closeouts)
        .where(closeouts.c.client == client)
        .order_by(closeouts.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else from_row(CloseoutRow, row)


def closeout_by_id(conn: Connection, closeout_id: int) -> CloseoutRow | None:
    row = conn.execute(sa.select(closeouts).where(closeouts.c.id == closeout_id)).first()
    return None if row is None else from_row(CloseoutRow, row)


def start_closeout(conn: Connection, client: str, now: datetime) -> int:
    """Record a new closeout of ``client`` (state ``closing``); its id."""
    result = conn.execute(
        sa.insert(closeouts)
        .values(client=client, state="closing", started_at=now, updated_at=now)
        .returning(closeouts.c.id)
    )
    return int(result.scalar_one())


def finish(
    conn: Connection, closeout_id: int, *, done: bool, reason: str | None, now: datetime
) -> None:
    """Record where the closeout stands: ``done`` (with its finishing time), or still
    ``closing`` with ``reason`` (what is still open and why)."""
    values: dict[str, Any] = {"updated_at": now, "reason": reason}
    if done:
        values.update(state="done", finished_at=now)
    conn.execute(sa.update(closeouts).where(closeouts.c.id == closeout_id).values(**values))


def add_ticket(
    conn: Connection,
    closeout_id: int,
    link_id: int,
    *,
    disposition: str,
    state: str,
    now: datetime,
    vendor_status: str | None = None,
    reason: str | None = None,
) -> bool:
    """Add a ticket to the closeout unless it is there already; True when added."""
    confirmed = now if state == "confirmed" else None
    return insert_ignore(
        conn,
        closeout_tickets,
        {
            "closeout_id": closeout_id,
            "link_id": link_id,
            "disposition": disposition,
            "state": state,
            "vendor_status": vendor_status,
            "reason": reason,
            "updated_at": now,
            "confirmed_at": confirmed,
        },
        on=["closeout_id", "link_id"],
    )


def update_ticket(conn: Connection, row_id: int, **values: Any) -> None:
    conn.execute(
        sa.update(closeout_tickets).where(closeout_tickets.c.id == row_id).values(**values)
    )


def tickets_of(conn: Connection, closeout_id: int) -> list[CloseoutTicketRow]:
    """The closeout's tickets, in the order they were added."""
    rows = conn.execute(
        sa.select(closeout_tickets)
        .where(closeout_tickets.c.closeout_id == closeout_id)
        .order_by(closeout_tickets.c.id)
    )
    return [from_row(CloseoutTicketRow, row) for row in rows]


def covered(conn: Connection, link_ids: Collection[int]) -> set[int]:
    """Which of ``link_ids`` a closeout (any) covers."""
    if not link_ids:
        return set()
    rows = conn.execute(
        sa.select(closeout_tickets.c.link_id)
        .where(closeout_tickets.c.link_id.in_(list(link_ids)))
        .distinct()
    )
    return {int(link_id) for link_id in rows.scalars()}


def outbox_by_key(conn: Connection, keys: Collection[str]) -> dict[str, OutboxRow]:
    """The outbox rows of ``keys`` (those that exist), by key."""
    if not keys:
        return {}
    rows = conn.execute(sa.select(outbox).where(outbox.c.key.in_(list(keys))))
    return {row.key: from_row(OutboxRow, row) for row in rows}


def hold_rules(conn: Connection, link_ids: Collection[int], now: datetime) -> dict[int, list[str]]:
    """Stop the rules' timers of ``link_ids`` (no step of theirs comes due again); the
    chains each link had running, by link."""
    running = {
        link_id: sorted((state.state or {}).get("chains") or {})
        for link_id, state in rule_states_of(conn, link_ids).items()
    }
    if link_ids:
        conn.execute(
            sa.update(rule_states)
            .where(rule_states.c.link_id.in_(list(link_ids)), rule_states.c.next_due_at.isnot(None))
            .values(next_due_at=None, updated_at=now)
        )
    return running


def held_clause() -> sa.ColumnElement[bool]:
    """True for a ``links`` row the rules skip: a closeout covers it, or its client is being
    closed out.  Correlated to ``links`` in the statement it is put in."""
    covered = sa.exists().where(closeout_tickets.c.link_id == links.c.id)
    closing = sa.exists().where(
        closeouts.c.client == links.c.company, closeouts.c.state == "closing"
    )
    return sa.or_(covered, closing)


def cancel_rule_writes(
    conn: Connection, link_ids: Collection[int], *, keep: Collection[str]
) -> list[OutboxRow]:
    """Cancel the writes the rules queued for ``link_ids`` that are not sent yet: their
    notifications, and the notes no mirrored note stands behind (client updates, escalation
    notes; a mirrored note has its ledger entry under the same key).  Rows in flight are
    left to finish; ``keep``: keys not to touch (the closeout's own writes).  The rows
    cancelled."""
    if not link_ids:
        return []
    mirrored = sa.exists().where(ledger.c.key == outbox.c.key)
    query = sa.select(outbox).where(
        outbox.c.link_id.in_(list(link_ids)),
        outbox.c.state == "pending",
        sa.or_(
            outbox.c.operation == "notify",
            sa.and_(outbox.c.operation == "add_note", sa.not_(mirrored)),
        ),
    )
    if keep:
        query = query.where(outbox.c.key.not_in(list(keep)))
    rows = [from_row(OutboxRow, row) for row in conn.execute(query)]
    if rows:
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.id.in_([row.id for row in rows]), outbox.c.state == "pending")
            .values(state="cancelled", last_error="cancelled: the client is being closed out")
        )
    return rows


def link_and_hold(conn: Connection, link_id: int) -> tuple[LinkRow, bool] | None:
    """The link and whether the rules skip it, in one statement (the per-ticket path reads
    the link anyway)."""
    row = conn.execute(
        sa.select(links, held_clause().label("held_by_closeout")).where(links.c.id == link_id)
    ).first()
    if row is None:
        return None
    return from_row(LinkRow, row), bool(row.held_by_closeout)


def is_held(conn: Connection, link: LinkRow) -> bool:
    """Do the rules skip this link (see :func:`held_clause`)?  One statement."""
    query = sa.select(held_clause()).select_from(links).where(links.c.id == link.id)
    return bool(conn.execute(query).scalar())


def note_return(
    conn: Connection, link_id: int, client: str | None, connection: str, now: datetime
) -> int | None:
    """A new link of ``client``: when the client was closed out (its latest closeout is
    done), record the return once; the closeout's id, or ``None`` when it is no return."""
    if client is None:
        return None
    last = latest_closeout(conn, client)
    if last is None or last.state != "done":
        return None
    if repo.has_event(conn, link_id, RETURN_EVENT):
        return None
    repo.add_event(
        conn,
        RETURN_EVENT,
        now=now,
        link_id=link_id,
        connection=connection,
        client=client,
        closeout_id=last.id,
        closed_out_at=None if last.finished_at is None else last.finished_at.isoformat(),
    )
    return last.id


def returns_of(conn: Connection, client: str | None = None) -> list[EventRow]:
    """The recorded returns (of one client, or of every client), oldest first."""
    rows = [
        from_row(EventRow, row)
        for row in conn.execute(
            sa.select(events).where(events.c.kind == RETURN_EVENT).order_by(events.c.id)
        )
    ]
    if client is None:
        return rows
    return [row for row in rows if (row.detail or {}).get("client") == client]


def client_counts(conn: Connection) -> tuple[int, int, int]:
    """Clients ever linked, clients closed out (a done closeout), and closed-out clients
    that came back (a return recorded): the inputs of retention and return rates."""
    linked = conn.execute(
        sa.select(sa.func.count(sa.distinct(links.c.company))).where(links.c.company.isnot(None))
    ).scalar_one()
    closed = conn.execute(
        sa.select(sa.func.count(sa.distinct(closeouts.c.client))).where(closeouts.c.state == "done")
    ).scalar_one()
    returned = {(row.detail or {}).get("client") for row in returns_of(conn)}
    returned.discard(None)
    return int(linked), int(closed), len(returned)


def list_closeouts(conn: Connection, client: str | None = None) -> list[CloseoutSummary]:
    """Every recorded closeout (of ``client``), newest first, its tickets counted by state."""
    query = sa.select(closeouts).order_by(closeouts.c.id.desc())
    if client is not None:
        query = query.where(closeouts.c.client == client)
    found = [from_row(CloseoutRow, row) for row in conn.execute(query)]
    if not found:
        return []
    counts: dict[int, dict[str, int]] = {row.id: {} for row in found}
    for closeout_id, state, count in conn.execute(
        sa.select(closeout_tickets.c.closeout_id, closeout_tickets.c.state, sa.func.count())
        .where(closeout_tickets.c.closeout_id.in_(list(counts)))
        .group_by(closeout_tickets.c.closeout_id, closeout_tickets.c.state)
    ):
        counts[int(closeout_id)][str(state)] = int(count)
    returns: dict[int, int] = {}
    for event in returns_of(conn):
        closeout_id = (event.detail or {}).get("closeout_id")
        if isinstance(closeout_id, int):
            returns[closeout_id] = returns.get(closeout_id, 0) + 1
    return [CloseoutSummary(row, counts[row.id], returns.get(row.id, 0)) for row in found]


def events_of(conn: Connection, link_ids: Sequence[int], kinds: Collection[str]) -> list[EventRow]:
    """The events of ``kinds`` of ``link_ids``, oldest first."""
    if not link_ids:
        return []
    query = (
        sa.select(events)
        .where(events.c.link_id.in_(list(link_ids)), events.c.kind.in_(list(kinds)))
        .order_by(events.c.id)
    )
    return [from_row(EventRow, row) for row in conn.execute(query)]
