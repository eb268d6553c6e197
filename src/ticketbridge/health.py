"""What the daemon knows about each system's health that the store does not keep.

The engine keeps each system's polls (``Engine.health``: last poll, last success, the
streak of failures) and each adapter its request budget; the store keeps the poll
cursors.  Webhooks leave no trace that is cheap to read back (the inbox holds only the
hints, not the refusals), so the webhook endpoint records here when each system last
called and how, in memory: after a restart the dashboard says "none since start".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ticketbridge.clock import utcnow

__all__ = ["HealthRegistry", "WebhookHealth"]


@dataclass
class WebhookHealth:
    """One system's webhooks since the daemon started."""

    last_at: datetime | None = None
    last_outcome: str | None = None
    last_accepted_at: datetime | None = None
    #: Refused in a row (bad signature or token, malformed, too large); reset by an accepted one.
    refused_streak: int = 0
    accepted: int = 0
    refused: int = 0


@dataclass
class HealthRegistry:
    """Per-system webhook health, filled by the webhook endpoint."""

    clock: Callable[[], datetime] = utcnow
    webhooks: dict[str, WebhookHealth] = field(default_factory=dict)

    #: Outcomes that are the caller's fault or an attack, not a delivery.
    REFUSALS = frozenset({"unauthorized", "malformed", "too_large", "aborted", "unavailable"})

    def webhook(self, system: str, outcome: str) -> None:
        """Record one webhook request of ``system`` and its outcome (the metric's label)."""
        health = self.webhooks.setdefault(system, WebhookHealth())
        now = self.clock()
        health.last_at, health.last_outcome = now, outcome
        if outcome in self.REFUSALS:
            health.refused += 1
            health.refused_streak += 1
        else:
            health.accepted += 1
            health.refused_streak = 0
            health.last_accepted_at = now
