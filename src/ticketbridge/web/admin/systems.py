"""Per-system health as the dashboard shows it, put together from what each part of the
daemon knows: the engine's poll record, the store's poll cursor, the webhook record
(:class:`~ticketbridge.health.HealthRegistry`) and the adapter's request budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticketbridge.health import HealthRegistry, WebhookHealth

__all__ = ["SystemHealth", "system_health"]


@dataclass(frozen=True)
class SystemHealth:
    name: str
    kind: str
    display_name: str
    poll_ok: bool | None
    last_poll_at: datetime | None
    last_poll_ok_at: datetime | None
    poll_error: str | None
    #: polls failed in a row
    error_streak: int
    #: source time the poll cursor has reached, and when it last moved
    cursor_position: datetime | None
    cursor_moved_at: datetime | None
    webhooks: WebhookHealth | None
    #: requests that may be sent now, of ``quota_requests`` per ``quota_seconds``
    quota_left: int | None
    quota_requests: int | None
    quota_seconds: float | None
    #: seconds the budget is held after a 429 (or until a token returns)
    quota_wait: float

    @property
    def state(self) -> str:
        if self.poll_ok is False:
            return "failing"
        if self.poll_ok is None:
            return "not polled yet"
        if self.webhooks is not None and self.webhooks.refused_streak >= 3:
            return "webhooks refused"
        return "ok"


def system_health(
    *,
    config: Any,
    adapters: Mapping[str, Any],
    polls: Mapping[str, Any],
    registry: HealthRegistry | None,
    cursors: Mapping[str, tuple[datetime | None, datetime]],
) -> list[SystemHealth]:
    """One entry per configured system, by name."""
    out = []
    for name in sorted(config.systems):
        adapter = adapters.get(name)
        poll = polls.get(name)
        budget = getattr(getattr(adapter, "ctx", None), "budget", None)
        position, moved = cursors.get(name, (None, None))
        out.append(
            SystemHealth(
                name=name,
                kind=config.systems[name].kind,
                display_name=config.display_name(name),
                poll_ok=getattr(poll, "ok", None),
                last_poll_at=getattr(poll, "last_at", None),
                last_poll_ok_at=getattr(poll, "last_ok_at", None),
                poll_error=getattr(poll, "last_error", None),
                error_streak=int(getattr(poll, "failures", 0) or 0),
                cursor_position=position,
                cursor_moved_at=moved,
                webhooks=registry.webhooks.get(name) if registry is not None else None,
                quota_left=budget.available() if budget is not None else None,
                quota_requests=budget.requests if budget is not None else None,
                quota_seconds=budget.per_seconds if budget is not None else None,
                quota_wait=budget.wait_time() if budget is not None else 0.0,
            )
        )
    return out
