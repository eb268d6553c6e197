"""The per-system request budget: never more than N requests in any window of the period."""

from __future__ import annotations

import asyncio
import bisect
from datetime import UTC, datetime

import httpx
import pytest

from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import HttpClient, RetrySettings
from ticketbridge.errors import RateLimitedError, TransientError

pytestmark = pytest.mark.anyio


class FakeClock:
    """Monotonic time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def max_in_window(times: list[float], period: float) -> int:
    """The most grants in any half-open window [t, t + period)."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + period) - i for i, t in enumerate(ordered)), default=0
    )


def test_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestBudget(0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        RequestBudget(1, 0)


async def test_burst_up_to_the_budget_then_waits() -> None:
    """The first N go at once; the next waits until the first token comes back."""
    clock = FakeClock()
    budget = RequestBudget(3, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await budget.acquire()
    assert 0.0 == clock.now
    assert 0 == budget.available()
    assert 10.0 == budget.wait_time()
    await budget.acquire()
    assert 10.0 == clock.now


async def test_concurrent_callers_never_exceed_the_budget() -> None:
    """50 callers racing for a 5-per-2s budget: no 2 s window holds more than 5 grants."""
    clock = FakeClock()
    budget = RequestBudget(5, 2.0, clock=clock, sleep=clock.sleep)
    granted: list[float] = []

    async def caller() -> None:
        await budget.acquire()
        granted.append(clock.now)

    await asyncio.gather(*(caller() for _ in range(50)))
    assert 50 == len(granted)
    assert 5 == max_in_window(granted, 2.0)
    assert 18.0 == max(granted)  # 10 windows of 5, the last starting at 18 s


async def test_real_clock_paces_callers() -> None:
    """With the real clock, 4 acquisitions of a 2-per-0.2s budget take at least 0.2 s."""
    budget = RequestBudget(2, 0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []
    for _ in range(4):
        await budget.acquire()
        times.append(loop.time() - start)
    assert times[2] >= 0.2 - 0.01
    assert 2 == max_in_window(times, 0.19)


async def test_every_http_attempt_takes_a_token() -> None:
    """Retries are requests too: a 503 then a 200 spend two tokens."""
    answers = iter([503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={})

    clock = FakeClock()
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    client = HttpClient(
        system="acme",
        base_url="http://acme.invalid",
        transport=httpx.MockTransport(handler),
        retry=RetrySettings(attempts=2, wait_min=0.0, wait_max=0.0),
        budget=budget,
    )
    try:
        await client.request("GET", "/x")
    finally:
        await client.aclose()
    assert 8 == budget.available()


async def test_http_client_waits_for_the_budget() -> None:
    """A spent budget holds the next request back until a token returns."""
    sent: list[float] = []
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(200, json={})

    client = HttpClient(
        system="acme",
        base_url="http://acme.invalid",
        transport=httpx.MockTransport(handler),
        budget=RequestBudget(2, 30.0, clock=clock, sleep=clock.sleep),
    )
    try:
        for _ in range(5):
            await client.request("GET", "/x")
    finally:
        await client.aclose()
    assert [0.0, 0.0, 30.0, 30.0, 60.0] == sent


async def test_uncertain_write_failure_still_spent_a_token() -> None:
    """A write that failed uncertainly is not retried, but its one attempt counted."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502)

    clock = FakeClock()
    budget = RequestBudget(5, 60.0, clock=clock, sleep=clock.sleep)
    client = HttpClient(
        system="acme",
        base_url="http://acme.invalid",
        transport=httpx.MockTransport(handler),
        budget=budget,
    )
    try:
        with pytest.raises(TransientError):
            await client.request("POST", "/x", json={})
    finally:
        await client.aclose()
    assert 4 == budget.available()


async def test_hold_stops_every_caller() -> None:
    """A hold (a 429's Retry-After) delays the next grant even with tokens left."""
    clock = FakeClock()
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    await budget.acquire()
    budget.hold(7.5)
    assert 9 == budget.available()
    await budget.acquire()
    assert 7.5 == clock.now


@pytest.mark.parametrize(
    "retry_after", ["4", "Sat, 01 Mar 2025 10:00:04 GMT"], ids=["seconds", "http-date"]
)
async def test_429_retry_after_holds_the_budget(
    retry_after: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 with Retry-After (seconds or HTTP date) holds the shared budget that long:
    the next caller of the system waits although tokens are left."""
    import ticketbridge.adapters.kit.http as http_module

    real_parse = http_module.parse_retry_after
    now = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(http_module, "parse_retry_after", lambda value: real_parse(value, now=now))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": retry_after})

    clock = FakeClock()
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    client = HttpClient(
        system="acme",
        base_url="http://acme.invalid",
        transport=httpx.MockTransport(handler),
        retry=RetrySettings(attempts=1),
        budget=budget,
    )
    try:
        with pytest.raises(RateLimitedError) as info:
            await client.request("GET", "/x")
    finally:
        await client.aclose()
    assert 4.0 == info.value.retry_after
    assert 4.0 == budget.wait_time()
    assert 9 == budget.available()
