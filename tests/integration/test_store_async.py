"""The store's async face: work runs on store threads, never blocking the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.config import load_config
from ticketbridge.daemon import Daemon
from ticketbridge.store import Store, repo
from ticketbridge.store.batch import GroupCommit
from ticketbridge.store.tables import inbox

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
TOKEN = "webhook-secret-0042"
REQUEST = contextvars.ContextVar[str]("REQUEST", default="none")


def hint_count(store: Store) -> int:
    with store.tx() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one())


def add(c: Connection, key: str) -> bool:
    return repo.add_hint(c, system="s", delivery_key=key, ticket_id="t", now=NOW)


class TestRun:
    async def test_commits_and_returns_the_result(self, store: Store):
        """``run`` commits the work's transaction and hands back what it returned."""
        assert await store.run(lambda c: add(c, "a")) is True
        assert 1 == hint_count(store)

    async def test_rolls_back_and_reraises(self, store: Store):
        """An error inside the work rolls its transaction back and reaches the caller."""

        def fail(c: Connection) -> None:
            add(c, "a")
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            await store.run(fail)
        assert 0 == hint_count(store)

    async def test_the_loop_keeps_running_while_work_blocks(self, store: Store):
        """Slow store work (here 0.3 s) does not stop other tasks from running meanwhile."""
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await store.run(lambda c: time.sleep(0.3))
        task.cancel()
        assert ticks >= 10

    async def test_work_sees_the_callers_context(self, store: Store):
        """Context variables (the log context) set by the caller are visible in the work."""
        REQUEST.set("r-42")
        assert "r-42" == await store.run(lambda c: REQUEST.get())


class TestGroupCommit:
    async def test_items_submitted_together_share_transactions(self, store: Store):
        """100 concurrent submissions: every result right, far fewer than 100 transactions."""
        batches: list[int] = []

        def write(c: Connection, keys: Sequence[str]) -> list[bool]:
            batches.append(len(keys))
            return [add(c, key) for key in keys]

        group = GroupCommit(store, write)
        keys = [f"k{n % 50}" for n in range(100)]  # each delivery twice
        results = await asyncio.gather(*(group.submit(key) for key in keys))
        assert [True] * 50 + [False] * 50 == results
        assert 100 == sum(batches)
        assert len(batches) <= 3
        assert 50 == hint_count(store)

    async def test_a_failed_batch_fails_each_submitter(self, store: Store):
        """When a batch's transaction fails, every item in it gets the error; none is kept."""

        def write(c: Connection, keys: Sequence[str]) -> list[bool]:
            for key in keys:
                add(c, key)
            raise RuntimeError("disk full")

        group = GroupCommit(store, write)
        results = await asyncio.gather(
            *(group.submit(f"k{n}") for n in range(5)), return_exceptions=True
        )
        assert [RuntimeError] * 5 == [type(r) for r in results]
        assert 0 == hint_count(store)


@pytest.fixture
async def daemon(store_url: str) -> AsyncIterator[Daemon]:
    Store(store_url).upgrade()
    config = load_config(
        {
            "store": {"url": store_url},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "snow": {
                    "kind": "servicenow",
                    "base_url": "https://acme.service-now.com",
                    "settings": {"username": "u", "password": "p", "webhook_token": TOKEN},
                },
            },
            "connections": [
                {
                    "name": "c",
                    "psa": "psa",
                    "vendor": "snow",
                    "routing": {"boards": ["B"]},
                    "status_map": {
                        "vendor_to_psa": dict.fromkeys(
                            ["New", "In Progress", "On Hold", "Resolved", "Closed", "Canceled"]
                        )
                    },
                }
            ],
        }
    )
    d = Daemon(config)
    yield d
    d.store.close()


@pytest.fixture
def locked_inbox(store_url: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Another writer holding the inbox locked until told to let go: (held, release)."""
    other = Store(store_url)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.tx() as c:  # SQLite: BEGIN IMMEDIATE takes the write lock
            if not other.is_sqlite:
                c.execute(sa.text("LOCK TABLE webhook_inbox IN EXCLUSIVE MODE"))
            held.set()
            release.wait(timeout=10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        yield held, release
    finally:
        release.set()
        thread.join()
        other.close()


class TestIntakeUnderLock:
    async def test_health_answers_while_a_webhook_waits_for_the_store(
        self, daemon: Daemon, locked_inbox: tuple[threading.Event, threading.Event]
    ):
        """A webhook waiting on a locked store does not hold up other requests."""
        held, release = locked_inbox
        assert held.wait(timeout=10)
        body = json.dumps({"table": "incident", "sys_id": "a" * 32, "sys_mod_count": "1"})
        finished: list[str] = []
        transport = httpx.ASGITransport(app=daemon.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tb") as client:

            async def webhook() -> int:
                answer = await client.post(
                    "/webhooks/snow",
                    content=body.encode(),
                    headers={"X-Ticketbridge-Token": TOKEN},
                )
                finished.append("webhook")
                return answer.status_code

            async def health() -> int:
                await asyncio.sleep(0.1)  # the webhook is waiting for the lock by now
                answer = await client.get("/healthz")
                finished.append("healthz")
                await asyncio.sleep(0.2)
                release.set()
                return answer.status_code

            statuses = await asyncio.wait_for(asyncio.gather(webhook(), health()), timeout=20)
        assert [202, 200] == statuses
        assert ["healthz", "webhook"] == finished
        assert 1 == hint_count(daemon.store)
