"""Read-only queries behind the operator's dashboard (and its two outbox actions' look-ups).

Every listing is one page (``LIMIT``/``OFFSET``) with its total counted by SQL, ordered
by an indexed column, so a store with tens of thousands of links renders a page in
milliseconds: links by primary key, running clocks by ``ix_sla_clocks_next_wakeup``,
dead letters by ``ix_outbox_state_due``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.rows import LinkRow, OutboxRow, from_row
from ticketbridge.store.tables import cursors, events, inbox, links, outbox, sla_clocks

__all__ = [
    "ClockLine",
    "DeadLetter",
    "LinkFilter",
    "LinkLine",
    "Overview",
    "Page",
    "count_links",
    "cursor_times",
    "dead_letters",
    "filter_choices",
    "link_detail",
    "overview",
    "page_links",
    "running_clocks",
]

#: The audit event a rule run writes when it escalated the ticket (``engine.rules``).
ESCALATED_KIND = "rule_escalated"


@dataclass(frozen=True)
class Page:
    """Where one page of a listing starts and how long it is."""

    number: int = 1
    size: int = 50

    @property
    def offset(self) -> int:
        return (max(self.number, 1) - 1) * self.size


@dataclass(frozen=True)
class LinkFilter:
    """What the links page narrows to; ``None`` means any."""

    state: str | None = "open"
    vendor: str | None = None
    client: str | None = None
    #: whose move it is by the supplier clock: vendor | msp | client | resolved
    ball: str | None = None
    breached: bool | None = None
    escalated: bool | None = None


@dataclass(frozen=True)
class LinkLine:
    """One row of the links page."""

    link: LinkRow
    breached: bool
    clock_state: dict[str, Any] | None
    escalations: int


@dataclass(frozen=True)
class ClockLine:
    """A link whose supplier clock still has a threshold or deadline ahead."""

    link: LinkRow
    contract: str
    priority: str | None
    state: dict[str, Any]
    next_wakeup: datetime
    breached: bool


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered write with the ticket it belongs to."""

    row: OutboxRow
    link: LinkRow | None


@dataclass(frozen=True)
class Overview:
    links_by_state: dict[str, int]
    breached_open: int
    running_clocks: int
    outbox_by_state: dict[str, int]
    hints_pending: int


def _ball() -> sa.ColumnElement[str]:
    ball: sa.ColumnElement[str] = sla_clocks.c.state["ball"].as_string()
    return ball


def _escalated() -> sa.Exists:
    return (
        sa.select(events.c.id)
        .where(events.c.link_id == links.c.id, events.c.kind == ESCALATED_KIND)
        .exists()
    )


def _filtered(query: sa.Select[Any], f: LinkFilter, *, clocks: bool = True) -> sa.Select[Any]:
    """``query`` over the links ``f`` keeps; joined to their clocks when it reads them or
    ``f`` filters on them (a count without clock filters reads the links alone)."""
    if clocks or f.ball is not None or f.breached is not None:
        query = query.select_from(links.outerjoin(sla_clocks, sla_clocks.c.link_id == links.c.id))
    else:
        query = query.select_from(links)
    if f.state is not None:
        query = query.where(links.c.state == f.state)
    if f.vendor is not None:
        query = query.where(links.c.vendor_system == f.vendor)
    if f.client is not None:
        query = query.where(links.c.company == f.client)
    if f.ball is not None:
        query = query.where(_ball() == f.ball)
    if f.breached is True:
        query = query.where(sla_clocks.c.breached.is_(True))
    elif f.breached is False:
        query = query.where(
            sa.or_(sla_clocks.c.breached.is_(False), sla_clocks.c.link_id.is_(None))
        )
    if f.escalated is True:
        query = query.where(_escalated())
    elif f.escalated is False:
        query = query.where(~_escalated())
    return query


def count_links(conn: Connection, f: LinkFilter) -> int:
    return int(conn.execute(_filtered(sa.select(sa.func.count()), f, clocks=False)).scalar_one())


def page_links(conn: Connection, f: LinkFilter, page: Page) -> list[LinkLine]:
    """One page of links, newest first, with their clock and escalation count."""
    query = _filtered(
        sa.select(
            links,
            sla_clocks.c.breached.label("clock_breached"),
            sla_clocks.c.state.label("clock_state"),
        ),
        f,
    )
    rows = conn.execute(query.order_by(links.c.id.desc()).limit(page.size).offset(page.offset))
    fetched = list(rows)
    counts = _escalation_counts(conn, [row.id for row in fetched])
    return [
        LinkLine(
            link=from_row(LinkRow, row),
            breached=bool(row.clock_breached),
            clock_state=row.clock_state,
            escalations=counts.get(row.id, 0),
        )
        for row in fetched
    ]


def _escalation_counts(conn: Connection, link_ids: Sequence[int]) -> dict[int, int]:
    if not link_ids:
        return {}
    rows = conn.execute(
        sa.select(events.c.link_id, sa.func.count())
        .where(events.c.link_id.in_(link_ids), events.c.kind == ESCALATED_KIND)
        .group_by(events.c.link_id)
    )
    return {int(link_id): int(count) for link_id, count in rows}


def filter_choices(conn: Connection, *, limit: int = 500) -> tuple[list[str], list[str]]:
    """The vendor systems and clients that links name (for the filter lists), sorted."""
    vendors = conn.execute(
        sa.select(links.c.vendor_system).distinct().order_by(links.c.vendor_system).limit(limit)
    )
    clients = conn.execute(
        sa.select(links.c.company)
        .where(links.c.company.is_not(None))
        .distinct()
        .order_by(links.c.company)
        .limit(limit)
    )
    return [v for (v,) in vendors], [c for (c,) in clients]


def link_detail(conn: Connection, link_id: int) -> tuple[LinkRow, dict[str, Any] | None] | None:
    """A link with its supplier clock's row (as a mapping), or ``None`` when unknown."""
    row = conn.execute(
        sa.select(links, sla_clocks.c.contract, sla_clocks.c.priority.label("clock_priority"))
        .add_columns(
            sla_clocks.c.state.label("clock_state"), sla_clocks.c.breached.label("clock_breached")
        )
        .select_from(links.outerjoin(sla_clocks, sla_clocks.c.link_id == links.c.id))
        .where(links.c.id == link_id)
    ).first()
    if row is None:
        return None
    clock = None
    if row.contract is not None:
        clock = {
            "contract": row.contract,
            "priority": row.clock_priority,
            "state": row.clock_state,
            "breached": bool(row.clock_breached),
        }
    return from_row(LinkRow, row), clock


def running_clocks(conn: Connection, page: Page) -> tuple[int, list[ClockLine]]:
    """Clocks with a threshold or deadline ahead, soonest first; their total."""
    ahead = sla_clocks.c.next_wakeup.is_not(None)
    total = conn.execute(sa.select(sa.func.count()).select_from(sla_clocks).where(ahead))
    rows = conn.execute(
        sa.select(
            links,
            sla_clocks.c.contract,
            sla_clocks.c.priority.label("clock_priority"),
            sla_clocks.c.state.label("clock_state"),
            sla_clocks.c.next_wakeup,
            sla_clocks.c.breached.label("clock_breached"),
        )
        .select_from(sla_clocks.join(links, links.c.id == sla_clocks.c.link_id))
        .where(ahead)
        .order_by(sla_clocks.c.next_wakeup, sla_clocks.c.link_id)
        .limit(page.size)
        .offset(page.offset)
    )
    lines = [
        ClockLine(
            link=from_row(LinkRow, row),
            contract=row.contract,
            priority=row.clock_priority,
            state=row.clock_state,
            next_wakeup=row.next_wakeup,
            breached=bool(row.clock_breached),
        )
        for row in rows
    ]
    return int(total.scalar_one()), lines


def dead_letters(conn: Connection, page: Page) -> tuple[int, list[DeadLetter]]:
    """Dead-lettered writes, newest first, with their links; their total."""
    dead = outbox.c.state == "dead"
    total = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(dead))
    rows = list(
        conn.execute(
            sa.select(outbox)
            .where(dead)
            .order_by(outbox.c.id.desc())
            .limit(page.size)
            .offset(page.offset)
        )
    )
    link_ids = sorted({row.link_id for row in rows})
    found = {}
    if link_ids:
        found = {
            r.id: from_row(LinkRow, r)
            for r in conn.execute(sa.select(links).where(links.c.id.in_(link_ids)))
        }
    letters = [DeadLetter(from_row(OutboxRow, r), found.get(r.link_id)) for r in rows]
    return int(total.scalar_one()), letters


def outbox_row(conn: Connection, row_id: int) -> OutboxRow | None:
    row = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).first()
    return None if row is None else from_row(OutboxRow, row)


def overview(conn: Connection) -> Overview:
    """The counts on the dashboard's first page, each one grouped statement."""
    by_state = {
        state: int(n)
        for state, n in conn.execute(
            sa.select(links.c.state, sa.func.count()).group_by(links.c.state)
        )
    }
    breached = conn.execute(
        sa.select(sa.func.count())
        .select_from(sla_clocks.join(links, links.c.id == sla_clocks.c.link_id))
        .where(sla_clocks.c.breached.is_(True), links.c.state == "open")
    ).scalar_one()
    running = conn.execute(
        sa.select(sa.func.count())
        .select_from(sla_clocks)
        .where(sla_clocks.c.next_wakeup.is_not(None))
    ).scalar_one()
    writes = {
        state: int(n)
        for state, n in conn.execute(
            sa.select(outbox.c.state, sa.func.count())
            .where(outbox.c.state.in_(("pending", "sending", "dead")))
            .group_by(outbox.c.state)
        )
    }
    hints = conn.execute(
        sa.select(sa.func.count()).select_from(inbox).where(inbox.c.state == "pending")
    ).scalar_one()
    return Overview(by_state, int(breached), int(running), writes, int(hints))


def cursor_times(conn: Connection) -> dict[str, tuple[datetime | None, datetime]]:
    """Per system: the source time its poll has reached and when the cursor last moved."""
    rows = conn.execute(sa.select(cursors.c.system, cursors.c.position, cursors.c.updated_at))
    return {system: (position, updated) for system, position, updated in rows}
