"""Supplier SLA persistence: clock checkpoints, flags raised once, breach investigations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.rows import ClockRow, from_row
from ticketbridge.store.tables import breach_investigations, sla_clocks, sla_flags
from ticketbridge.store.upsert import insert_ignore, upsert

__all__ = [
    "breach_counts",
    "clock_for",
    "due_clocks",
    "first_clock",
    "open_investigation",
    "record_flag",
    "save_clock",
    "sweep_clock",
]


def clock_for(conn: Connection, link_id: int) -> ClockRow | None:
    """The link's stored SLA checkpoint, or None when it has none."""
    row = conn.execute(sa.select(sla_clocks).where(sla_clocks.c.link_id == link_id)).first()
    return None if row is None else from_row(ClockRow, row)


def first_clock(conn: Connection) -> ClockRow | None:
    """Any one stored checkpoint (the demo shows the first)."""
    row = conn.execute(sa.select(sla_clocks).order_by(sla_clocks.c.link_id).limit(1)).first()
    return None if row is None else from_row(ClockRow, row)


def save_clock(conn: Connection, link_id: int, **values: Any) -> None:
    """Store the link's checkpoint, replacing the one it had."""
    upsert(conn, sla_clocks, {"link_id": link_id, **values}, on=["link_id"])


def sweep_clock(
    conn: Connection, link_id: int, *, next_wakeup: datetime | None, breached: bool, now: datetime
) -> None:
    """After a sweep: when the checkpoint next needs a look, and whether it has breached."""
    conn.execute(
        sa.update(sla_clocks)
        .where(sla_clocks.c.link_id == link_id)
        .values(next_wakeup=next_wakeup, breached=breached, updated_at=now)
    )


def due_clocks(conn: Connection, now: datetime, *, limit: int) -> list[int]:
    """Links whose next threshold or deadline has come, the most overdue first."""
    rows = conn.execute(
        sa.select(sla_clocks.c.link_id)
        .where(sla_clocks.c.next_wakeup.is_not(None), sla_clocks.c.next_wakeup <= now)
        .order_by(sla_clocks.c.next_wakeup)
        .limit(limit)
    )
    return [int(r[0]) for r in rows]


def record_flag(
    conn: Connection,
    link_id: int,
    *,
    metric: str,
    kind: str,
    level: int,
    episode: int,
    occurred_at: datetime,
    now: datetime,
) -> bool:
    """Remember a threshold or breach; True only for the writer that flagged it first."""
    values = {
        "link_id": link_id,
        "metric": metric,
        "kind": kind,
        "level": level,
        "episode": episode,
        "occurred_at": occurred_at,
        "flagged_at": now,
    }
    return insert_ignore(
        conn, sla_flags, values, on=["link_id", "metric", "kind", "level", "episode"]
    )


def open_investigation(conn: Connection, **values: Any) -> int:
    """Open a breach investigation; its id."""
    result = conn.execute(sa.insert(breach_investigations).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def breach_counts(conn: Connection) -> dict[int, int]:
    """Breach investigations per link id."""
    rows = conn.execute(
        sa.select(breach_investigations.c.link_id, sa.func.count()).group_by(
            breach_investigations.c.link_id
        )
    )
    return {int(link_id): int(count) for link_id, count in rows}
