"""What the rules see: a frozen snapshot of one link at one instant.

The engine builds one :class:`Facts` per link (PSA ticket, vendor ticket,
SLA clocks, business hours) and hands it to :func:`ticketbridge.rules.engine.evaluate`.
Nothing here reads a database or a clock: every value, ``now`` included, is
given.  All datetimes are aware UTC (others are converted; naive ones refused).

:func:`sla_facts_from_snapshot` turns a :class:`~ticketbridge.sla.clock.SlaSnapshot`
into :class:`SlaFacts`; :func:`business_hours_at` answers "is the calendar open".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from ticketbridge.sla.calendar import BusinessCalendar
from ticketbridge.sla.clock import MetricSnapshot, MetricStatus, SlaSnapshot
from ticketbridge.sla.models import Ball

__all__ = [
    "METRICS",
    "Facts",
    "LinkFacts",
    "MetricFacts",
    "PsaFacts",
    "SlaFacts",
    "VendorNote",
    "business_hours_at",
    "sla_facts_from_snapshot",
]

#: The SLA metric names conditions may refer to.
METRICS: tuple[str, ...] = ("acknowledgment", "update_cadence", "resolution")


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime; pass an aware UTC datetime")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _fix_times(obj: object, names: tuple[str, ...]) -> None:
    """Convert the named datetime fields of a frozen dataclass to UTC in place."""
    for name in names:
        value = getattr(obj, name)
        fixed = _utc(value, f"{type(obj).__name__}.{name}")
        if fixed is not value:
            object.__setattr__(obj, name, fixed)


@dataclass(frozen=True, slots=True)
class PsaFacts:
    """The PSA ticket.  ``tier`` may be left ``None``: the rule set derives it from the queue."""

    id: str
    number: str | None = None
    summary: str = ""
    priority: str | None = None
    queue: str | None = None
    type: str | None = None
    company: str | None = None
    status: str | None = None
    assignee: str | None = None
    group: str | None = None
    tier: str | None = None
    subtype: str | None = None
    #: The status's class (a :class:`~ticketbridge.domain.StatusClass` value).
    status_class: str | None = None
    #: 1 is the most urgent priority.
    priority_rank: int | None = None
    created_at: datetime | None = None
    closed: bool = False
    closed_at: datetime | None = None

    def __post_init__(self) -> None:
        _fix_times(self, ("created_at", "closed_at"))


@dataclass(frozen=True, slots=True)
class VendorNote:
    """The vendor's latest public note (what a client update summarises)."""

    text: str
    at: datetime
    author: str | None = None

    def __post_init__(self) -> None:
        _fix_times(self, ("at",))


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """The link and the vendor ticket.

    ``resolved`` is the vendor's side (its ticket resolved or closed);
    ``escalation_level`` / ``escalated`` are what the engine knows beyond the
    rules' own record (the rules state adds its own, see the engine).
    ``breached`` is any supplier SLA breach on the link, kept after the
    clocks stop.  ``vendor_escalation_api`` says whether the vendor adapter
    can raise priority / set an escalation field (if not, e-mail it).
    """

    link_id: str
    connection: str = ""
    #: The vendor system's config key (conditions and contacts use it).
    vendor_system: str = ""
    #: The names clients and vendors read (``systems.<name>.display_name`` or the
    #: product's name); empty: the config key is all there is.
    vendor_name: str = ""
    psa_system: str = ""
    psa_name: str = ""
    vendor_ticket_id: str | None = None
    vendor_ticket_number: str | None = None
    vendor_status: str | None = None
    #: The vendor status's class (a :class:`~ticketbridge.domain.StatusClass` value).
    vendor_class: str | None = None
    vendor_priority: str | None = None
    ball: Ball = Ball.VENDOR
    ball_since: datetime | None = None
    linked_at: datetime | None = None
    vendor_last_public_update_at: datetime | None = None
    vendor_last_update_at: datetime | None = None
    latest_public_note: VendorNote | None = None
    escalation_level: int = 0
    escalated: bool = False
    breached: bool = False
    acknowledged_at: datetime | None = None
    resolved: bool = False
    resolved_at: datetime | None = None
    vendor_escalation_api: bool = True

    def __post_init__(self) -> None:
        _fix_times(
            self,
            (
                "ball_since",
                "linked_at",
                "vendor_last_public_update_at",
                "vendor_last_update_at",
                "acknowledged_at",
                "resolved_at",
            ),
        )
        if not isinstance(self.ball, Ball):
            object.__setattr__(self, "ball", Ball(self.ball))

    @property
    def vendor_linked(self) -> bool:
        return self.vendor_ticket_id is not None or self.vendor_ticket_number is not None


@dataclass(frozen=True, slots=True)
class MetricFacts:
    """One SLA metric at ``now``: ``elapsed_fraction`` 0.75 means 75 % of the allowance used."""

    metric: str
    status: str
    elapsed: timedelta
    target: timedelta | None
    remaining: timedelta | None
    elapsed_fraction: float | None
    breached: bool
    due_at: datetime | None
    business: bool = True

    def __post_init__(self) -> None:
        _fix_times(self, ("due_at",))

    @property
    def running(self) -> bool:
        return self.status == MetricStatus.RUNNING.value


@dataclass(frozen=True, slots=True)
class SlaFacts:
    acknowledgment: MetricFacts
    update_cadence: MetricFacts
    resolution: MetricFacts
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    def __post_init__(self) -> None:
        _fix_times(self, ("acknowledged_at", "resolved_at"))

    def metric(self, name: str) -> MetricFacts:
        if name == "acknowledgment":
            return self.acknowledgment
        if name == "update_cadence":
            return self.update_cadence
        if name == "resolution":
            return self.resolution
        raise KeyError(name)

    @property
    def breached(self) -> bool:
        return (
            self.acknowledgment.breached
            or self.update_cadence.breached
            or (self.resolution.breached)
        )


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a rule may look at for one link at ``now``.

    ``business_hours`` is whether the link's business calendar is open at
    ``now`` (``None``: unknown; a ``business_hours`` condition then fails);
    ``business_hours_until`` when it next opens or closes (``None``: never, or unknown).
    """

    now: datetime
    psa: PsaFacts
    link: LinkFacts
    sla: SlaFacts | None = None
    business_hours: bool | None = None
    business_hours_until: datetime | None = None

    def __post_init__(self) -> None:
        _fix_times(self, ("now", "business_hours_until"))

    @property
    def link_id(self) -> str:
        return self.link.link_id

    @property
    def age(self) -> timedelta | None:
        """How long the PSA ticket has been open at ``now``."""
        created = self.psa.created_at
        return None if created is None else self.now - created

    @property
    def acknowledged(self) -> bool:
        if self.link.acknowledged_at is not None:
            return True
        return self.sla is not None and self.sla.acknowledged_at is not None

    @property
    def acknowledged_at(self) -> datetime | None:
        if self.link.acknowledged_at is not None:
            return self.link.acknowledged_at
        return None if self.sla is None else self.sla.acknowledged_at

    @property
    def breached(self) -> bool:
        return self.link.breached or (self.sla is not None and self.sla.breached)

    @property
    def resolved(self) -> bool:
        """The vendor resolved its ticket."""
        return self.link.resolved

    @property
    def resolved_at(self) -> datetime | None:
        if self.link.resolved_at is not None:
            return self.link.resolved_at
        return None if self.sla is None else self.sla.resolved_at

    def at(self, now: datetime) -> Facts:
        """The same facts stamped with another ``now`` (for rehearsals)."""
        return replace(self, now=now)


def _metric_facts(m: MetricSnapshot) -> MetricFacts:
    return MetricFacts(
        metric=m.metric.value,
        status=m.status.value,
        elapsed=m.elapsed,
        target=m.target,
        remaining=m.remaining,
        elapsed_fraction=m.fraction,
        breached=m.breached,
        due_at=m.due_at,
        business=m.business,
    )


def sla_facts_from_snapshot(snapshot: SlaSnapshot) -> SlaFacts:
    """The rules' view of a link's SLA clocks.

    ``acknowledged_at`` is when the acknowledgment clock stopped before the
    ticket was resolved (a resolution also stops it, but is no acknowledgment).
    """
    ack = snapshot.acknowledgment
    acknowledged_at = None
    if ack.status is MetricStatus.STOPPED and ack.stopped_at is not None:
        resolved_at = snapshot.resolved_at
        if resolved_at is None or ack.stopped_at < resolved_at:
            acknowledged_at = ack.stopped_at
    return SlaFacts(
        acknowledgment=_metric_facts(ack),
        update_cadence=_metric_facts(snapshot.update_cadence),
        resolution=_metric_facts(snapshot.resolution),
        acknowledged_at=acknowledged_at,
        resolved_at=snapshot.resolved_at,
    )


def business_hours_at(calendar: BusinessCalendar | bool | None, now: datetime) -> bool | None:
    """Whether ``calendar`` is open at ``now``; a bool passes through, ``None`` is unknown."""
    if calendar is None or isinstance(calendar, bool):
        return calendar
    return calendar.is_open(now)
