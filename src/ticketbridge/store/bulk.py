"""Bulk loading for benchmarks and imports: many rows in one statement each.

Rows are plain mappings of the tables' columns; nothing here checks what the
engine would (routing, keys): the caller builds rows the engine could have written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.tables import events, links, outbox, sla_clocks

__all__ = ["add_clocks", "add_events", "add_links", "add_outbox", "cancel_pending"]

Row = Mapping[str, Any]


def _insert(conn: Connection, table: sa.Table, rows: Sequence[Row]) -> int:
    if rows:
        conn.execute(sa.insert(table), [dict(r) for r in rows])
    return len(rows)


def add_links(conn: Connection, rows: Sequence[Row]) -> int:
    """Insert link rows (their ``id`` given or not); how many were inserted."""
    return _insert(conn, links, rows)


def add_events(conn: Connection, rows: Sequence[Row]) -> int:
    """Insert audit event rows."""
    return _insert(conn, events, rows)


def add_clocks(conn: Connection, rows: Sequence[Row]) -> int:
    """Insert SLA clock rows."""
    return _insert(conn, sla_clocks, rows)


def add_outbox(conn: Connection, rows: Sequence[Row]) -> int:
    """Insert outbox rows (pending writes)."""
    return _insert(conn, outbox, rows)


def cancel_pending(conn: Connection) -> int:
    """Cancel every pending write (a benchmark's set-up left them); how many."""
    result = conn.execute(
        sa.update(outbox).where(outbox.c.state == "pending").values(state="cancelled")
    )
    return int(result.rowcount or 0)
