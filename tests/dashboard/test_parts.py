"""The dashboard's small parts on their own: the webhook record, the scorecards kept in
memory, the sign-in cookie and the charts' geometry."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from ticketbridge.health import HealthRegistry
from ticketbridge.report import Report
from ticketbridge.web.admin.auth import Authenticator
from ticketbridge.web.admin.charts import BAR_AREA, bar_chart
from ticketbridge.web.admin.scorecards import ScorecardCache

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


class TestHealthRegistry:
    def test_refusals_make_a_streak_that_a_delivery_ends(self):
        registry = HealthRegistry(clock=lambda: NOW)
        for outcome in ("unauthorized", "malformed", "too_large"):
            registry.webhook("psa", outcome)
        psa = registry.webhooks["psa"]
        assert (3, 3, 0, None) == (
            psa.refused_streak,
            psa.refused,
            psa.accepted,
            psa.last_accepted_at,
        )
        registry.webhook("psa", "duplicate")
        assert (0, 1, NOW, "duplicate") == (
            psa.refused_streak,
            psa.accepted,
            psa.last_accepted_at,
            psa.last_outcome,
        )
        assert "vendor" not in registry.webhooks


class TestScorecardCache:
    @pytest.mark.anyio
    async def test_computed_once_then_refreshed_behind_the_page(self):
        calls: list[int] = []
        release = threading.Event()
        release.set()
        now = [0.0]

        def compute() -> Report:
            release.wait(5)
            calls.append(len(calls) + 1)
            return Report(NOW, NOW, None, None, rows=[])

        cache = ScorecardCache(compute, ttl=60, clock=lambda: NOW, timer=lambda: now[0])
        first = await cache.get()
        assert [1] == calls
        assert first is await cache.get()  # fresh: not computed again
        now[0] = 61.0
        release.clear()  # the refresh blocks: the page still gets the last figures at once
        stale = await cache.get()
        assert first is stale
        assert [1] == calls
        release.set()
        await cache.refresh()
        assert [1, 2] == calls
        assert first is not cache.last

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"


class TestSessionCookie:
    def test_signed_expiring_and_bound_to_the_process_key(self):
        auth = Authenticator(token="t" * 20, username=None, password=None, session_seconds=60)
        cookie = auth.session_cookie("token", now=1000)
        assert "token" == auth.session_name(cookie, now=1059)
        assert auth.session_name(cookie, now=1061) is None  # expired
        forged = cookie.replace("1060:", "9999:", 1)
        assert auth.session_name(forged, now=1000) is None
        other = Authenticator(token="t" * 20, username=None, password=None, session_seconds=60)
        assert other.session_name(cookie, now=1000) is None  # a restart signs everyone out


class TestBarChart:
    def test_bars_scale_and_missing_is_not_zero(self):
        chart = bar_chart("x", [("a", 50.0), ("b", None), ("c", 0.0)], scale_max=100)
        a, b, c = chart.bars
        assert (BAR_AREA / 2, "50") == (a.width, a.text)
        assert (0.0, "no data", None) == (b.width, b.text, b.value)
        assert (0.0, "0", 0.0) == (c.width, c.text, c.value)


def test_event_loop_not_left_running():
    """The cache's computation runs on a thread of its own, not the loop's."""
    seen: list[str] = []

    def compute() -> Report:
        seen.append(threading.current_thread().name)
        return Report(NOW, NOW, None, None, rows=[])

    async def main() -> None:
        cache = ScorecardCache(compute, ttl=1, clock=lambda: NOW, timer=lambda: 0.0)
        await cache.get()

    asyncio.run(main())
    assert seen
    assert threading.main_thread().name != seen[0]
