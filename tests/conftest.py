"""Shared fixtures: stores on SQLite and on the real PostgreSQL, a fake clock, fake systems."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ticketbridge.store import Store

PG_URL = os.environ.get(
    "TICKETBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: The real mail servers' fixtures (Dovecot, aiosmtpd) for the e-mail tests.
pytest_plugins = ["tests.mail.servers"]

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _root_logging_as_it_was() -> Iterator[None]:
    """A test that configures logging (the CLI, the daemon) leaves the root logger as it
    found it: library threads outliving the test (a test SMTP server) log nowhere."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL, or a skip (a failure when CI=true) if the server is down."""
    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL at {PG_URL} is not reachable ({problem})"
        if IN_CI:
            pytest.fail(message + "; CI=true requires it (.ci/run starts it)")
        pytest.skip(message)
    return PG_URL


def _pg_schema_url(base: str, schema: str) -> str:
    url = sa.engine.make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def _pg_admin(pg_url: str) -> Iterator[sa.Engine]:
    admin = sa.create_engine(pg_url)
    yield admin
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on each engine: SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tb.db'}"
        return
    base = request.getfixturevalue("pg_url")
    admin: sa.Engine = request.getfixturevalue("_pg_admin")
    schema = f"tb_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file the migrations made once: each test's store starts as a copy."""
    path = tmp_path_factory.mktemp("migrated") / "tb.db"
    s = Store(f"sqlite:///{path}")
    s.upgrade()
    s.close()
    return path


#: The statements the migrations ran on the first PostgreSQL schema of the run, replayed as
#: one script on the next ones (the same tables, indexes and version, without Alembic's
#: per-run work and a round trip per statement).
_PG_MIGRATION_SCRIPT: list[str] = []


def _migrate(store: Store, request: pytest.FixtureRequest) -> None:
    """``store.upgrade()`` for a fresh test store, from what an earlier upgrade made.

    Every store still goes through ``upgrade()`` (finding it at the head); the migrations
    themselves run in full once per engine and run, and from empty in tests/integration/
    test_store.py."""
    if store.is_sqlite:
        target = Path(store.url.database or "")
        if target.name and not target.exists():
            shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), target)
    elif _PG_MIGRATION_SCRIPT:
        with store.engine.begin() as conn:
            conn.connection.driver_connection.execute(_PG_MIGRATION_SCRIPT[0])  # type: ignore[union-attr]
    else:
        ran: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if not parameters and not statement.lstrip().upper().startswith("SELECT"):
                ran.append(statement)

        sa.event.listen(store.engine, "before_cursor_execute", record)
        try:
            store.upgrade()
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", record)
        _PG_MIGRATION_SCRIPT.append(";\n".join(ran))
    store.upgrade()


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    s = Store(store_url)
    _migrate(s, request)
    try:
        yield s
    finally:
        s.close()
