"""A per-system request budget: a token bucket every call to one system draws from.

``RequestBudget(requests, per_seconds)`` starts full (``requests`` tokens) and
refills at ``requests / per_seconds`` tokens a second; :meth:`acquire` waits
for a token, so ticketbridge paces itself below the product's quota instead
of collecting 429s.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RequestBudget"]


class RequestBudget:
    """A token bucket of ``requests`` tokens refilled over ``per_seconds``."""

    def __init__(self, requests: int, per_seconds: float) -> None:
        if requests < 1 or per_seconds <= 0:
            raise ValueError("a request budget needs requests >= 1 and per_seconds > 0")
        self.requests = requests
        self.per_seconds = per_seconds
        self._rate = requests / per_seconds
        self._tokens = float(requests)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.requests), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Take one token, waiting until the bucket holds one."""
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1.0
