"""Alembic environment: runs on the connection handed over by ``Store.upgrade``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from ticketbridge.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn: sa.Connection) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("run migrations with `ticketbridge db upgrade --config FILE`")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
