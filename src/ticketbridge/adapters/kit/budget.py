"""A per-system request budget, so ticketbridge paces itself instead of collecting 429s.

Every product documents (or its admin configures) how many API requests a client
may send in a period: some thousand an hour, a few hundred per 5 minutes, or a
limit per plan.  Each adapter declares its product's quota as
``request_budget``; ``systems.<name>.request_budget`` overrides it.  One
:class:`RequestBudget` is shared by every call to one system (polls, writes,
retries, look-ups) and makes a caller wait when the budget is spent.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RequestBudget"]


class RequestBudget:
    """A token bucket: ``requests`` tokens, each coming back ``per_seconds`` after it was spent.

    Because a token returns exactly ``per_seconds`` after its use (not bit by bit
    at an average rate), no window of ``per_seconds`` ever holds more than
    ``requests`` grants, bursts included.  Callers are served first come, first
    served.  ``clock`` (monotonic seconds) and ``sleep`` can be replaced in tests.
    """

    def __init__(
        self,
        requests: int,
        per_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests < 1:
            raise ValueError("a request budget needs at least 1 request")
        if per_seconds <= 0:
            raise ValueError("a request budget's period must be positive")
        self.requests = requests
        self.per_seconds = float(per_seconds)
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[float] = deque()
        self._held_until = 0.0
        self._refused_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RequestBudget({self.requests}, {self.per_seconds:g})"

    def _release_returned(self, now: float) -> None:
        while self._spent and self._spent[0] + self.per_seconds <= now:
            self._spent.popleft()

    def available(self) -> int:
        """Tokens that could be taken right now without waiting."""
        self._release_returned(self._clock())
        return self.requests - len(self._spent)

    def wait_time(self) -> float:
        """Seconds until a token is free and no hold is on (0 when one is free now)."""
        now = self._clock()
        self._release_returned(now)
        held = max(0.0, self._held_until - now)
        if len(self._spent) < self.requests:
            return held
        return max(held, self._spent[0] + self.per_seconds - now)

    def hold(self, seconds: float) -> None:
        """Give no token for ``seconds`` (the system answered 429 with ``Retry-After``).

        Every caller of the system waits, not only the one that was refused.
        """
        self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    def refused(self, seconds: float, *, probe: float) -> float:
        """A 429 asked to wait ``seconds``, longer than a call waits inline; the seconds
        the whole budget is now held.

        One 429 is most often about the refused request itself (its record, its
        user, a burst): the refused write is parked for the full ``Retry-After`` by
        its caller, and every other caller only pauses ``probe`` seconds, so other
        tickets keep flowing at the budget's pace.  A second 429 while an earlier
        one's wait is still running shows the limit is the whole system's: then the
        whole budget is held for the full wait, so ticketbridge does not keep
        knocking.  At most one request per refused window is spent on finding out.
        """
        now = self._clock()
        seconds = max(0.0, seconds)
        held = seconds if self._refused_until > now else min(seconds, max(0.0, probe))
        self._refused_until = max(self._refused_until, now + seconds)
        self.hold(held)
        return held

    async def acquire(self) -> None:
        """Take one token, waiting for one to come back when none is left."""
        async with self._lock:
            while (wait := self.wait_time()) > 0:
                await self._sleep(wait)
            self._spent.append(self._clock())
