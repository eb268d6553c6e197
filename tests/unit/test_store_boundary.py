"""All SQL lives in ``ticketbridge.store``: nothing else builds or runs statements."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_boundaries import SRC, imports_of

#: What code outside the store may import of SQLAlchemy: the connection type it passes on.
ALLOWED_SQLALCHEMY = {"sqlalchemy.engine"}
#: Store internals: tables and statement builders.
STORE_INTERNALS = {"ticketbridge.store.tables", "ticketbridge.store.upsert"}


OUTSIDE_STORE = sorted(p for p in SRC.rglob("*.py") if "store" not in p.relative_to(SRC).parts)


@pytest.mark.parametrize("path", OUTSIDE_STORE, ids=lambda p: str(p.relative_to(SRC)))
def test_no_sql_outside_the_store(path: Path):
    """Outside ``store/``, no module imports SQLAlchemy (beyond its connection type) or
    the store's tables: queries are repository functions returning typed rows."""
    imported = imports_of(path)
    sql = {m for m in imported if m.split(".")[0] == "sqlalchemy"} - ALLOWED_SQLALCHEMY
    assert set() == sql | (imported & STORE_INTERNALS)


def test_the_check_sees_the_engine():
    """The list above is not empty by mistake: it holds the engine, web app and CLI."""
    names = {str(p.relative_to(SRC)) for p in OUTSIDE_STORE}
    assert {
        "engine/core.py",
        "engine/sla.py",
        "web/app.py",
        "cli/__init__.py",
        "report.py",
    } <= names
