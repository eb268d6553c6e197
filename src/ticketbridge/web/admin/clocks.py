"""Supplier clocks as the dashboard shows them: per metric, whether it runs and when it
is due, read from the checkpoint the SLA keeper stores (no calendar arithmetic: the
deadline of a running metric is precomputed in business time when it starts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticketbridge.sla.clock import Metric, MetricStatus, SlaState

__all__ = ["ClockView", "MetricView", "read_clock"]


@dataclass(frozen=True)
class MetricView:
    metric: str
    status: str
    #: the instant the current episode breaches (running, not yet breached)
    due_at: datetime | None
    breached_at: datetime | None
    breach_count: int


@dataclass(frozen=True)
class ClockView:
    ball: str
    resolved_at: datetime | None
    metrics: tuple[MetricView, ...]

    @property
    def next_due(self) -> datetime | None:
        """The soonest deadline still ahead of a running metric."""
        due = [m.due_at for m in self.metrics if m.due_at is not None]
        return min(due) if due else None

    @property
    def breached(self) -> bool:
        return any(m.breach_count for m in self.metrics)


def read_clock(state: Mapping[str, Any] | None) -> ClockView | None:
    """The clock stored as ``state`` (``SlaState.to_dict``), or ``None`` without one."""
    if not state:
        return None
    parsed = SlaState.from_dict(state)
    views = []
    for metric in Metric:
        m = parsed.metric(metric)
        running = m.status is MetricStatus.RUNNING and m.episode_breached_at is None
        views.append(
            MetricView(
                metric=metric.value.replace("_", " "),
                status=m.status.value,
                due_at=m.deadline if running else None,
                breached_at=m.breached_at,
                breach_count=m.breach_count,
            )
        )
    return ClockView(parsed.ball.value, parsed.resolved_at, tuple(views))
