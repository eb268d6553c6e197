"""The scorecards page's figures, computed in the background and kept a while.

A scorecard evaluates every link's clock over the window (about a millisecond a link:
ten seconds at 10,000 links), far too slow for a page.  So it is computed on a thread
of its own (not the store's threads, which the engine uses) when the dashboard is
first used, kept for ``admin.scorecard_refresh``, and recomputed in the background
when older, while the page shows the last one with the time it was computed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from ticketbridge.report import Report

__all__ = ["ScorecardCache"]

log = structlog.get_logger("ticketbridge.admin")


@dataclass(frozen=True)
class Computed:
    report: Report
    at: datetime
    seconds: float


class ScorecardCache:
    def __init__(
        self,
        compute: Callable[[], Report],
        *,
        ttl: float,
        clock: Callable[[], datetime],
        timer: Callable[[], float],
    ) -> None:
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._timer = timer
        self._last: Computed | None = None
        self._computed_at = 0.0
        self._task: asyncio.Task[Computed] | None = None

    @property
    def last(self) -> Computed | None:
        return self._last

    def refresh(self) -> asyncio.Task[Computed]:
        """Start a computation unless one is running; the running one."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="scorecards")
        return self._task

    async def get(self) -> Computed:
        """The latest figures: at once when there are any (refreshed behind the scenes
        when older than the ttl), else after the first computation."""
        if self._last is None:
            return await asyncio.shield(self.refresh())
        if self._timer() - self._computed_at > self._ttl:
            self.refresh()
        return self._last

    async def _run(self) -> Computed:
        began = self._timer()
        try:
            report = await asyncio.to_thread(self._compute)
        except Exception as exc:
            log.error("scorecards_failed", error=f"{type(exc).__name__}: {exc}")
            raise
        took = self._timer() - began
        self._last = Computed(report, self._clock(), took)
        self._computed_at = self._timer()
        log.info("scorecards_computed", rows=len(report.rows), seconds=round(took, 3))
        return self._last
