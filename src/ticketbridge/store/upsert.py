"""``INSERT … ON CONFLICT`` for the dialect of the connection (SQLite or PostgreSQL).

Inserts that concurrent writers (several replicas, or two tasks of one process) may race
on use these instead of select-then-insert, so the unique constraint decides and the
loser neither fails nor duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["insert_ignore", "upsert"]


def _insert(conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**values)


def insert_ignore(
    conn: Connection,
    table: sa.Table,
    values: Mapping[str, Any],
    *,
    on: Sequence[str] | None = None,
) -> bool:
    """Insert unless a row with the same ``on`` columns exists; True when inserted.

    ``on=None``: skip the insert when any unique constraint of the table would be broken.
    """
    elements = list(on) if on is not None else None
    stmt = _insert(conn, table, values).on_conflict_do_nothing(index_elements=elements)
    if conn.dialect.name == "postgresql":
        # psycopg reports no row count here: ask for the inserted key instead
        returning = stmt.returning(*table.primary_key.columns)
        return conn.execute(returning).first() is not None
    return bool(conn.execute(stmt).rowcount == 1)


def upsert(
    conn: Connection, table: sa.Table, values: Mapping[str, Any], *, on: Sequence[str]
) -> None:
    """Insert, or update every other given column of the row with the same ``on`` columns."""
    stmt = _insert(conn, table, values)
    changes = {name: stmt.excluded[name] for name in values if name not in on}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(on), set_=changes))
