"""Supplier scorecards: per (vendor, priority) aggregates of link outcomes.

Percentiles interpolate linearly between closest ranks (the ``inclusive``
method of :func:`statistics.quantiles`, numpy's default), so the median of an
even count is the mean of the middle two.  Durations are in the metric's own
basis (business or calendar time, as the contract says); a ticket not yet
acknowledged (resolved) has no acknowledgment (resolution) time and is left
out of those figures, which are ``None`` when no ticket has one: missing, not 0.

A ticket without a target (no contract for it, or its priority not in the
contract) is counted under ``no_target`` and left out of compliance and
breaches.  Compliance is the share of the tickets *with* a target that have no
breach (acknowledgment, update cadence or resolution), ``None`` when no
ticket has a target; ``breach_count`` counts breaches, so a ticket whose
vendor missed two updates counts two.  ``escalations`` counts the rule runs
that escalated a ticket (see :class:`~ticketbridge.rules.models.ActionKind`),
not every rule step.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ticketbridge.sla.clock import MetricStatus, SlaSnapshot

__all__ = ["ALL_PRIORITIES", "LinkOutcome", "ScorecardRow", "median", "percentile", "scorecard"]

#: The ``priority`` of a vendor's total row (``scorecard(..., totals=True)``).
ALL_PRIORITIES = "all"
_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """What one linked ticket did; ``ack``/``resolution`` are ``None`` until they happened.

    ``targeted`` is False for a ticket no contract target applies to.
    """

    vendor: str
    priority: str
    client: str | None = None
    targeted: bool = True
    ack: timedelta | None = None
    resolution: timedelta | None = None
    ack_breached: bool = False
    cadence_breaches: int = 0
    resolution_breached: bool = False
    breach_minutes: float = 0.0
    escalations: int = 0
    reopens: int = 0

    @property
    def breaches(self) -> int:
        return int(self.ack_breached) + self.cadence_breaches + int(self.resolution_breached)

    @classmethod
    def from_snapshot(
        cls,
        snap: SlaSnapshot,
        *,
        vendor: str,
        priority: str,
        client: str | None = None,
        escalations: int = 0,
    ) -> LinkOutcome:
        """The outcome of a link from its clocks evaluated at some ``now``."""
        ack, res, cad = snap.acknowledgment, snap.resolution, snap.update_cadence
        overdue = ack.overdue + cad.overdue + res.overdue
        return cls(
            vendor=vendor,
            priority=priority,
            client=client,
            targeted=any(m.target is not None for m in snap.metrics),
            ack=ack.elapsed if ack.status is MetricStatus.STOPPED else None,
            resolution=res.elapsed if res.status is MetricStatus.STOPPED else None,
            ack_breached=ack.breached,
            cadence_breaches=cad.breach_count,
            resolution_breached=res.breached,
            breach_minutes=overdue.total_seconds() / 60,
            escalations=escalations,
            reopens=snap.reopen_count,
        )


@dataclass(frozen=True, slots=True)
class ScorecardRow:
    """One (vendor, priority) group.  ``None`` means no data: no ticket acknowledged
    (resolved) for the times, no ticket with a target for compliance and breaches."""

    vendor: str
    priority: str
    tickets: int
    no_target: int
    acknowledged: int
    resolved: int
    ack_median: timedelta | None
    ack_p90: timedelta | None
    resolution_median: timedelta | None
    resolution_p90: timedelta | None
    compliance_pct: float | None
    breach_count: int | None
    breach_minutes: float | None
    escalations: int
    reopens: int


def percentile(values: Sequence[timedelta], pct: float) -> timedelta | None:
    """The ``pct`` percentile (0..100) by linear interpolation; ``None`` for no values."""
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is outside 0..100")
    if not values:
        return None
    ordered = sorted(v // _ONE_US for v in values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return timedelta(microseconds=round(value))


def median(values: Sequence[timedelta]) -> timedelta | None:
    return percentile(values, 50)


def _priority_key(priority: str) -> tuple[int, int, str]:
    if priority == ALL_PRIORITIES:
        return (2, 0, priority)
    if priority.isdigit():
        return (0, int(priority), priority)
    return (1, 0, priority)


def _row(vendor: str, priority: str, group: Sequence[LinkOutcome]) -> ScorecardRow:
    acks = [o.ack for o in group if o.ack is not None]
    resolutions = [o.resolution for o in group if o.resolution is not None]
    targeted = [o for o in group if o.targeted]
    compliant = sum(1 for o in targeted if o.breaches == 0)
    return ScorecardRow(
        vendor=vendor,
        priority=priority,
        tickets=len(group),
        no_target=len(group) - len(targeted),
        acknowledged=len(acks),
        resolved=len(resolutions),
        ack_median=median(acks),
        ack_p90=percentile(acks, 90),
        resolution_median=median(resolutions),
        resolution_p90=percentile(resolutions, 90),
        compliance_pct=100 * compliant / len(targeted) if targeted else None,
        breach_count=sum(o.breaches for o in targeted) if targeted else None,
        breach_minutes=sum(o.breach_minutes for o in targeted) if targeted else None,
        escalations=sum(o.escalations for o in group),
        reopens=sum(o.reopens for o in group),
    )


def scorecard(
    outcomes: Iterable[LinkOutcome],
    *,
    clients: Collection[str] | None = None,
    totals: bool = False,
) -> list[ScorecardRow]:
    """One row per (vendor, priority), sorted by vendor then priority (numeric first).

    ``clients`` keeps only those MSP clients' links; ``totals`` adds a row per
    vendor with priority :data:`ALL_PRIORITIES` after its priority rows.
    """
    groups: dict[tuple[str, str], list[LinkOutcome]] = {}
    for outcome in outcomes:
        if clients is not None and outcome.client not in clients:
            continue
        groups.setdefault((outcome.vendor, outcome.priority), []).append(outcome)
    if totals:
        for (vendor, _), group in list(groups.items()):
            groups.setdefault((vendor, ALL_PRIORITIES), []).extend(group)
    keys = sorted(groups, key=lambda k: (k[0], _priority_key(k[1])))
    return [_row(vendor, priority, groups[(vendor, priority)]) for vendor, priority in keys]
