"""Retry-After: parsed into a bounded wait, short ones waited out, long ones handed back."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
import pytest

from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import (
    RETRY_AFTER_CEILING,
    HttpClient,
    RetrySettings,
    deadline,
    parse_retry_after,
)
from ticketbridge.errors import RateLimitedError, TransientError

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("20", 20.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("inf", RETRY_AFTER_CEILING),
        ("Infinity", RETRY_AFTER_CEILING),
        ("-inf", 0.0),
        ("1e12", RETRY_AFTER_CEILING),
        ("1e400", RETRY_AFTER_CEILING),
        ("100000000", RETRY_AFTER_CEILING),
        ("nan", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Tue, 01 Dec 2026 12:00:30 GMT", 30.0),
        ("Tue, 01 Dec 2026 11:00:00 GMT", 0.0),
        ("Tue, 01 Jan 2030 00:00:00 GMT", RETRY_AFTER_CEILING),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_CEILING),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_parse_is_always_bounded(value: str | None, seconds: float | None) -> None:
    """Any header value gives a finite wait from 0 to the ceiling, or None."""
    assert seconds == parse_retry_after(value, now=NOW)


def test_parse_takes_a_lower_ceiling() -> None:
    assert 900.0 == parse_retry_after("inf", now=NOW, ceiling=900.0)


def client(handler: httpx.MockTransport, **kwargs: object) -> HttpClient:
    return HttpClient(
        system="acme",
        base_url="http://acme.invalid",
        transport=handler,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_long_retry_after_ends_the_call_at_once() -> None:
    """A 429 asking for 20 s is not slept out in the call: it is raised at once, with the
    wait, after one request."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(429, headers={"Retry-After": "20"})

    http = client(httpx.MockTransport(handler), retry=RetrySettings(attempts=3))
    started = time.monotonic()
    try:
        with pytest.raises(RateLimitedError) as info:
            await http.request("POST", "/notes", json={})
    finally:
        await http.aclose()
    assert time.monotonic() - started < 1.0
    assert 20.0 == info.value.retry_after
    assert ["POST"] == sent


async def test_no_retry_starts_that_could_outlive_the_deadline() -> None:
    """With 5 s left before the caller's deadline and a 20 s timeout, a 503 on a read is
    not retried; with no time left, nothing is sent at all."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(503)

    http = client(
        httpx.MockTransport(handler),
        retry=RetrySettings(attempts=3, wait_min=0.0, wait_max=0.0),
        timeout=20.0,
    )
    try:
        with deadline(lambda: 5.0), pytest.raises(TransientError):
            await http.request("GET", "/x")
        assert ["GET"] == sent
        with deadline(lambda: 0.0), pytest.raises(TransientError, match="deadline"):
            await http.request("POST", "/x", json={})
        assert ["GET"] == sent
        with deadline(lambda: 100.0), pytest.raises(TransientError):
            await http.request("GET", "/x")
        assert 4 == len(sent)  # enough time: all three attempts
    finally:
        await http.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_one_long_refusal_pauses_the_budget_only_briefly() -> None:
    """The first 429 with a long Retry-After: the refused write waits (its caller parks it),
    every other caller only pauses for the probe."""
    clock = Clock()
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    assert 1.0 == budget.refused(20.0, probe=1.0)
    assert 1.0 == budget.wait_time()


def test_a_second_refusal_inside_the_window_pauses_everyone() -> None:
    """A second 429 while the first one's wait runs: the limit is the system's, so the
    whole budget is held for the full wait; once the window is over, back to probing."""
    clock = Clock()
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    budget.refused(20.0, probe=1.0)
    clock.now = 2.0
    assert 20.0 == budget.refused(20.0, probe=1.0)
    assert 20.0 == budget.wait_time()
    clock.now = 60.0
    assert 1.0 == budget.refused(20.0, probe=1.0)


async def test_a_long_429_does_not_hold_other_callers_for_its_wait() -> None:
    """Through the HTTP client: after one 429 asking 20 s, the next request of another
    caller waits about a second, not 20."""
    clock = Clock()
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    answers = iter([httpx.Response(429, headers={"Retry-After": "20"}), httpx.Response(200)])
    http = client(httpx.MockTransport(lambda request: next(answers)), budget=budget)
    try:
        with pytest.raises(RateLimitedError):
            await http.request("POST", "/a", json={})
        await http.request("POST", "/b", json={})
    finally:
        await http.aclose()
    assert clock.now <= 1.0


async def test_a_request_never_outlives_the_deadline() -> None:
    """With 5 s left and a 20 s timeout, the request is sent with a 5 s timeout."""
    timeouts: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        return httpx.Response(200)

    http = client(httpx.MockTransport(handler), timeout=20.0)
    try:
        with deadline(lambda: 5.0):
            await http.request("POST", "/x", json={})
        await http.request("POST", "/x", json={})
    finally:
        await http.aclose()
    assert [5.0, 20.0] == timeouts
