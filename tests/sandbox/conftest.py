"""In-process HTTP clients for the sandbox apps (no sockets), and a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal

from ticketbridge.clock import FakeClock


class SyncASGITransport(httpx.BaseTransport):
    """A synchronous httpx transport calling an ASGI app in an event loop thread.

    Exceptions the app raises (such as an injected disconnect) reach the caller.
    """

    def __init__(self, app: object) -> None:
        self._inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self._cm: AbstractContextManager[BlockingPortal] = anyio.from_thread.start_blocking_portal()
        self._portal = self._cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return self._portal.call(call)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


MakeClient = Callable[..., httpx.Client]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """``make_client(app, base_url=..., headers=...)``: an httpx.Client wired to the app."""
    clients: list[httpx.Client] = []

    def make(
        app: object,
        *,
        base_url: str = "http://testserver",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Client:
        client = httpx.Client(
            transport=SyncASGITransport(app), base_url=base_url, headers=dict(headers or {})
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing at 2026-01-05 09:00:00 UTC until advanced."""
    return FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
