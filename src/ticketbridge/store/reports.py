"""Read-only queries behind ``ticketbridge report`` and the link list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.rows import ReportLinkRow, from_row
from ticketbridge.store.tables import events, links, sla_clocks

__all__ = ["event_counts", "scorecard_links"]


def scorecard_links(
    conn: Connection, *, since: datetime, vendor: str | None, client: str | None
) -> list[ReportLinkRow]:
    """Links created since ``since`` that have an SLA checkpoint, optionally filtered."""
    query = (
        sa.select(
            links.c.id,
            links.c.vendor_system,
            links.c.company,
            sla_clocks.c.state.label("clock_state"),
            sla_clocks.c.priority.label("clock_priority"),
        )
        .join(sla_clocks, sla_clocks.c.link_id == links.c.id)
        .where(links.c.created_at >= since)
    )
    if vendor:
        query = query.where(links.c.vendor_system == vendor)
    if client:
        query = query.where(links.c.company == client)
    return [from_row(ReportLinkRow, row) for row in conn.execute(query)]


def event_counts(conn: Connection, kinds: Sequence[str]) -> dict[int, int]:
    """How many events of these kinds each link has (links with none are absent)."""
    rows = conn.execute(
        sa.select(events.c.link_id, sa.func.count())
        .where(events.c.kind.in_(kinds), events.c.link_id.is_not(None))
        .group_by(events.c.link_id)
    )
    return {int(link_id): int(count) for link_id, count in rows}
