"""What one link's story is made of, read in a handful of statements (``ticketbridge
timeline``, the post-incident reviews): its history, notes, writes, SLA flags and clock,
breach investigations and lessons-learned records, plus the lookup from a PSA ticket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.rows import (
    ClockRow,
    EventRow,
    LedgerRow,
    LinkRow,
    OutboxRow,
    from_row,
)
from ticketbridge.store.tables import (
    breach_investigations,
    events,
    ledger,
    lessons_learned,
    links,
    outbox,
    sla_clocks,
    sla_flags,
)

__all__ = [
    "FlagRow",
    "InvestigationRow",
    "LessonRow",
    "LinkHistory",
    "close_investigation",
    "close_lesson",
    "get_investigation",
    "get_lesson",
    "link_history",
    "links_for_psa_ticket",
    "list_investigations",
    "list_lessons",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FlagRow:
    """A threshold or breach flagged once (table ``sla_flags``)."""

    id: int
    link_id: int
    metric: str
    kind: str
    level: int
    episode: int
    occurred_at: datetime
    flagged_at: datetime


@dataclass(frozen=True, slots=True)
class InvestigationRow:
    """A breach investigation (table ``breach_investigations``)."""

    id: int
    link_id: int
    connection: str
    vendor_system: str
    vendor_ticket: str | None
    contract: str
    priority: str | None
    metric: str
    episode: int
    target_seconds: float | None
    elapsed_seconds: float
    business: bool
    breached_at: datetime
    vendor_last_action: str | None
    vendor_last_action_at: datetime | None
    state: str
    opened_at: datetime
    closed_at: datetime | None
    findings: str | None


@dataclass(frozen=True, slots=True)
class LessonRow:
    """A lessons-learned record (table ``lessons_learned``)."""

    id: int
    link_id: int
    rule: str
    key: str
    summary: str
    details: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    findings: str | None


@dataclass(frozen=True, slots=True)
class LinkHistory:
    """Everything the store holds about one link, each part oldest first."""

    link: LinkRow
    events: list[EventRow]
    notes: list[LedgerRow]
    writes: list[OutboxRow]
    flags: list[FlagRow]
    clock: ClockRow | None
    investigations: list[InvestigationRow]
    lessons: list[LessonRow]


def links_for_psa_ticket(
    conn: Connection, psa_ticket: str, *, connection: str | None = None
) -> list[LinkRow]:
    """The links of a PSA ticket given by its id or its number (one per connection),
    oldest first."""
    query = sa.select(links).where(
        sa.or_(links.c.psa_ticket_id == psa_ticket, links.c.psa_number == psa_ticket)
    )
    if connection is not None:
        query = query.where(links.c.connection == connection)
    return [from_row(LinkRow, row) for row in conn.execute(query.order_by(links.c.id))]


def link_history(conn: Connection, link_id: int) -> LinkHistory | None:
    """The link's whole stored story, or ``None`` when there is no such link."""
    row = conn.execute(sa.select(links).where(links.c.id == link_id)).first()
    if row is None:
        return None
    clock = conn.execute(sa.select(sla_clocks).where(sla_clocks.c.link_id == link_id)).first()

    def rows(table: sa.Table, cls: type[T], *order: sa.ColumnElement[Any]) -> list[T]:
        query = sa.select(table).where(table.c.link_id == link_id).order_by(*order, table.c.id)
        return [from_row(cls, r) for r in conn.execute(query)]

    return LinkHistory(
        link=from_row(LinkRow, row),
        events=rows(events, EventRow),
        notes=rows(ledger, LedgerRow, ledger.c.source_created_at),
        writes=rows(outbox, OutboxRow),
        flags=rows(sla_flags, FlagRow, sla_flags.c.occurred_at),
        clock=None if clock is None else from_row(ClockRow, clock),
        investigations=rows(breach_investigations, InvestigationRow),
        lessons=rows(lessons_learned, LessonRow),
    )


def list_investigations(conn: Connection, *, state: str | None = None) -> list[InvestigationRow]:
    """Every breach investigation (in ``state`` only, when given), oldest first."""
    query = sa.select(breach_investigations).order_by(breach_investigations.c.id)
    if state is not None:
        query = query.where(breach_investigations.c.state == state)
    return [from_row(InvestigationRow, r) for r in conn.execute(query)]


def list_lessons(conn: Connection, *, state: str | None = None) -> list[LessonRow]:
    """Every lessons-learned record (in ``state`` only, when given), oldest first."""
    query = sa.select(lessons_learned).order_by(lessons_learned.c.id)
    if state is not None:
        query = query.where(lessons_learned.c.state == state)
    return [from_row(LessonRow, r) for r in conn.execute(query)]


def get_investigation(conn: Connection, row_id: int) -> InvestigationRow | None:
    row = conn.execute(
        sa.select(breach_investigations).where(breach_investigations.c.id == row_id)
    ).first()
    return None if row is None else from_row(InvestigationRow, row)


def get_lesson(conn: Connection, row_id: int) -> LessonRow | None:
    row = conn.execute(sa.select(lessons_learned).where(lessons_learned.c.id == row_id)).first()
    return None if row is None else from_row(LessonRow, row)


def close_investigation(
    conn: Connection, row_id: int, *, now: datetime, findings: str | None
) -> bool:
    """Close an open investigation with its findings; False when none is open by that id."""
    values: dict[str, object] = {"state": "closed", "closed_at": now}
    if findings:
        values["findings"] = findings
    result = conn.execute(
        sa.update(breach_investigations)
        .where(breach_investigations.c.id == row_id, breach_investigations.c.state == "open")
        .values(**values)
    )
    return bool(result.rowcount)


def close_lesson(conn: Connection, row_id: int, *, now: datetime, findings: str | None) -> bool:
    """Close an open lessons-learned record with its findings; False when none is open by
    that id."""
    values: dict[str, object] = {"state": "closed", "closed_at": now}
    if findings:
        values["findings"] = findings
    result = conn.execute(
        sa.update(lessons_learned)
        .where(lessons_learned.c.id == row_id, lessons_learned.c.state == "open")
        .values(**values)
    )
    return bool(result.rowcount)
