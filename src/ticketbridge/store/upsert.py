"""``INSERT … ON CONFLICT`` for the dialect of the connection (SQLite or PostgreSQL).

Inserts that concurrent writers (several replicas, or two tasks of one process) may race
on use these instead of select-then-insert, so the unique constraint decides and the
loser neither fails nor duplicates.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["insert_ignore", "upsert"]


@functools.lru_cache(maxsize=256)
def _statement(
    dialect: str,
    table: sa.Table,
    columns: tuple[str, ...],
    on: tuple[str, ...] | None,
    update: bool,
) -> Any:
    """The statement for these columns, built once: the values are bound at execution, so
    each call costs an execution of a cached compiled statement, not a statement build."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    if update:
        assert on is not None
        changes = {name: insert.excluded[name] for name in columns if name not in on}
        return insert.on_conflict_do_update(index_elements=list(on), set_=changes)
    stmt = insert.on_conflict_do_nothing(index_elements=None if on is None else list(on))
    if dialect == "postgresql":
        # psycopg reports no row count here: ask for the inserted key instead
        stmt = stmt.returning(*table.primary_key.columns)
    return stmt


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
    dialect = conn.dialect.name
    key = None if on is None else tuple(on)
    stmt = _statement(dialect, table, tuple(values), key, False)
    result = conn.execute(stmt, dict(values))
    if dialect == "postgresql":
        return result.first() is not None
    return bool(result.rowcount == 1)


def upsert(
    conn: Connection, table: sa.Table, values: Mapping[str, Any], *, on: Sequence[str]
) -> None:
    """Insert, or update every other given column of the row with the same ``on`` columns."""
    stmt = _statement(conn.dialect.name, table, tuple(values), tuple(on), True)
    conn.execute(stmt, dict(values))
