"""Read-only queries behind the dashboard's reviews and closeouts pages.

Reviews live in two tables (lessons learned, breach investigations); the reviews page
lists them as one listing, so the page is cut from a ``UNION ALL`` of both, counted and
ordered by SQL like every other listing of the dashboard.  The tables hold one row per
closed incident or missed target, a few thousand at most, so the sort on ``opened_at``
needs no index of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.closeout import CloseoutRow, CloseoutTicketRow
from ticketbridge.store.dashboard import Page
from ticketbridge.store.rows import LinkRow, from_row
from ticketbridge.store.tables import (
    breach_investigations,
    closeout_tickets,
    closeouts,
    lessons_learned,
    links,
)

__all__ = [
    "CloseoutDetail",
    "CloseoutFilter",
    "CloseoutLine",
    "ReviewFilter",
    "ReviewLine",
    "closeout_clients",
    "closeout_detail",
    "count_closeouts",
    "count_reviews",
    "page_closeouts",
    "page_reviews",
]

#: Review kinds as the pages name them, with the prefix of their ids.
LESSONS = "lessons"
INVESTIGATIONS = "investigations"
_PREFIX = {LESSONS: "LL", INVESTIGATIONS: "BI"}

#: Closeout ticket states that still wait on the vendor (``closeout.TicketState``).
STILL_OPEN = ("queued", "open", "refused")


@dataclass(frozen=True)
class ReviewFilter:
    """What the reviews page narrows to; ``None`` means any."""

    state: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class ReviewLine:
    """One row of the reviews page."""

    kind: str
    row_id: int
    state: str
    opened_at: datetime
    closed_at: datetime | None
    summary: str
    link_id: int
    link: LinkRow | None

    @property
    def id(self) -> str:
        """``LL-3`` or ``BI-2``, as ``reviews list`` shows it."""
        return f"{_PREFIX[self.kind]}-{self.row_id}"


def _reviews(f: ReviewFilter) -> sa.Subquery:
    """Both kinds of review in the same columns, narrowed by ``f``."""
    parts: list[sa.Select[Any]] = []
    if f.kind in (None, LESSONS):
        lesson = sa.select(
            sa.literal(LESSONS, sa.String).label("kind"),
            lessons_learned.c.id.label("row_id"),
            lessons_learned.c.link_id,
            lessons_learned.c.state,
            lessons_learned.c.opened_at,
            lessons_learned.c.closed_at,
            lessons_learned.c.summary,
            sa.cast(sa.null(), sa.String).label("metric"),
            sa.cast(sa.null(), sa.String).label("contract"),
        )
        if f.state is not None:
            lesson = lesson.where(lessons_learned.c.state == f.state)
        parts.append(lesson)
    if f.kind in (None, INVESTIGATIONS):
        inv = breach_investigations
        investigation = sa.select(
            sa.literal(INVESTIGATIONS, sa.String).label("kind"),
            inv.c.id.label("row_id"),
            inv.c.link_id,
            inv.c.state,
            inv.c.opened_at,
            inv.c.closed_at,
            sa.cast(sa.null(), sa.String).label("summary"),
            inv.c.metric,
            inv.c.contract,
        )
        if f.state is not None:
            investigation = investigation.where(inv.c.state == f.state)
        parts.append(investigation)
    if not parts:
        raise ValueError(f"unknown review kind {f.kind!r}: {LESSONS} or {INVESTIGATIONS}")
    query: Any = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    sub: sa.Subquery = query.subquery("reviews")
    return sub


def count_reviews(conn: Connection, f: ReviewFilter) -> int:
    sub = _reviews(f)
    return int(conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar_one())


def page_reviews(conn: Connection, f: ReviewFilter, page: Page) -> list[ReviewLine]:
    """One page of reviews, newest first, each with its link."""
    sub = _reviews(f)
    rows = list(
        conn.execute(
            sa.select(sub)
            .order_by(sub.c.opened_at.desc(), sub.c.kind, sub.c.row_id.desc())
            .limit(page.size)
            .offset(page.offset)
        )
    )
    found = _links(conn, (row.link_id for row in rows))
    return [
        ReviewLine(
            kind=row.kind,
            row_id=int(row.row_id),
            state=row.state,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            summary=row.summary
            if row.kind == LESSONS
            else f"{str(row.metric).replace('_', ' ')} target missed ({row.contract})",
            link_id=int(row.link_id),
            link=found.get(int(row.link_id)),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class CloseoutFilter:
    """What the closeouts page narrows to; ``None`` means any."""

    state: str | None = None
    client: str | None = None


@dataclass(frozen=True)
class CloseoutLine:
    """One row of the closeouts page: the closeout and its tickets counted by state."""

    closeout: CloseoutRow
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def tickets(self) -> int:
        return sum(self.counts.values())

    @property
    def confirmed(self) -> int:
        return self.counts.get("confirmed", 0)

    @property
    def still_open(self) -> int:
        return sum(n for state, n in self.counts.items() if state in STILL_OPEN)


@dataclass(frozen=True)
class CloseoutDetail:
    """A closeout with its tickets (oldest first) and their links; ``latest`` is the id of
    the client's latest closeout (the one its report describes)."""

    closeout: CloseoutRow
    tickets: list[tuple[CloseoutTicketRow, LinkRow | None]]
    latest: int


def _closeouts_where(query: sa.Select[Any], f: CloseoutFilter) -> sa.Select[Any]:
    if f.state is not None:
        query = query.where(closeouts.c.state == f.state)
    if f.client is not None:
        query = query.where(closeouts.c.client == f.client)
    return query


def count_closeouts(conn: Connection, f: CloseoutFilter) -> int:
    query = _closeouts_where(sa.select(sa.func.count()).select_from(closeouts), f)
    return int(conn.execute(query).scalar_one())


def page_closeouts(conn: Connection, f: CloseoutFilter, page: Page) -> list[CloseoutLine]:
    """One page of closeouts, newest first, their tickets counted by state."""
    query = _closeouts_where(sa.select(closeouts), f)
    found = [
        from_row(CloseoutRow, row)
        for row in conn.execute(
            query.order_by(closeouts.c.id.desc()).limit(page.size).offset(page.offset)
        )
    ]
    counts: dict[int, dict[str, int]] = {row.id: {} for row in found}
    if counts:
        for closeout_id, state, n in conn.execute(
            sa.select(closeout_tickets.c.closeout_id, closeout_tickets.c.state, sa.func.count())
            .where(closeout_tickets.c.closeout_id.in_(list(counts)))
            .group_by(closeout_tickets.c.closeout_id, closeout_tickets.c.state)
        ):
            counts[int(closeout_id)][str(state)] = int(n)
    return [CloseoutLine(row, counts[row.id]) for row in found]


def closeout_clients(conn: Connection, *, limit: int = 500) -> list[str]:
    """The clients with a recorded closeout, for the filter's choices."""
    query = sa.select(closeouts.c.client).distinct().order_by(closeouts.c.client).limit(limit)
    return [str(value) for value in conn.execute(query).scalars()]


def closeout_detail(conn: Connection, closeout_id: int) -> CloseoutDetail | None:
    """The closeout ``closeout_id`` with its tickets, or ``None`` when there is none."""
    row = conn.execute(sa.select(closeouts).where(closeouts.c.id == closeout_id)).first()
    if row is None:
        return None
    closeout = from_row(CloseoutRow, row)
    tickets = [
        from_row(CloseoutTicketRow, r)
        for r in conn.execute(
            sa.select(closeout_tickets)
            .where(closeout_tickets.c.closeout_id == closeout_id)
            .order_by(closeout_tickets.c.id)
        )
    ]
    found = _links(conn, (t.link_id for t in tickets))
    latest = conn.execute(
        sa.select(sa.func.max(closeouts.c.id)).where(closeouts.c.client == closeout.client)
    ).scalar_one()
    return CloseoutDetail(closeout, [(t, found.get(t.link_id)) for t in tickets], int(latest))


def _links(conn: Connection, link_ids: Iterable[int]) -> dict[int, LinkRow]:
    wanted = sorted(set(link_ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(links).where(links.c.id.in_(wanted)))
    return {row.id: from_row(LinkRow, row) for row in rows}
