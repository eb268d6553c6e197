"""Fixtures of the dashboard tests: a seeded store and the admin app over it.

The in-process client is an ``httpx.Client`` on the sandbox tests' ASGI transport: what
Starlette's ``TestClient`` is, without its deprecation warning for httpx (warnings are
errors here) and without another HTTP client package.

Read-only tests share one seeded store per module and engine (``seeded_ro``); tests
that change rows get a fresh one (``seeded``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import _pg_schema_url
from tests.dashboard import seed
from tests.sandbox.conftest import SyncASGITransport
from ticketbridge.store import Store
from ticketbridge.web.admin import Authenticator, create_admin_app

#: Links in the seeded store of the page tests.
LINKS = 240


def _service(store: Store) -> seed.Service:
    config = seed.make_config(
        str(store.url.render_as_string(hide_password=False)),
        token=seed.TOKEN,
        username=seed.USER,
        password=seed.PASSWORD,
    )
    seed.seed(store, config, LINKS)
    seed.seed_records(store)
    return seed.service(store, config)


@pytest.fixture
def seeded(store: Store) -> seed.Service:
    return _service(store)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded_ro(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[seed.Service]:
    """One seeded store per module and engine, for tests that only read."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('dash')) / 'tb.db'}"
    else:
        base = request.getfixturevalue("pg_url")
        schema = f"tb_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(base)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = _pg_schema_url(base, schema)
    store = Store(url)
    store.upgrade()
    try:
        yield _service(store)
    finally:
        store.close()
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _client(service: seed.Service) -> Iterator[httpx.Client]:
    app = create_admin_app(service, Authenticator.from_config(service.config.admin))
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://127.0.0.1:8081") as c:
        yield c


@pytest.fixture
def client(seeded: seed.Service) -> Iterator[httpx.Client]:
    """A client without credentials over a fresh seeded store."""
    yield from _client(seeded)


@pytest.fixture
def authed(seeded: seed.Service) -> Iterator[httpx.Client]:
    """A client with the bearer token over a fresh seeded store."""
    for c in _client(seeded):
        c.headers["Authorization"] = f"Bearer {seed.TOKEN}"
        yield c


@pytest.fixture
def reader(seeded_ro: seed.Service) -> Iterator[httpx.Client]:
    """A client with the bearer token over the module's shared seeded store."""
    for c in _client(seeded_ro):
        c.headers["Authorization"] = f"Bearer {seed.TOKEN}"
        yield c


@pytest.fixture
def anonymous(seeded_ro: seed.Service) -> Iterator[httpx.Client]:
    """A client without credentials over the module's shared seeded store."""
    yield from _client(seeded_ro)
