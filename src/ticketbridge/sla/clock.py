"""Supplier SLA clocks computed from a link's event history.

An :class:`SlaEvent` is something the source systems said happened, stamped
with the *source* system's time: the vendor ticket was opened, the ball moved
(``ball`` with a :class:`~ticketbridge.sla.models.Ball` value), the vendor
acknowledged / was assigned / set In Progress, posted a public update, resolved
the ticket, or it was reopened.  From those, three metrics are timed against
the contract's targets, counting only while the ball is with the vendor:

``acknowledgment``
    From ``opened`` until the acknowledgment the contract names
    (``acknowledgment_by``: the first vendor public update, ``in_progress`` or
    ``assigned``; an explicit ``acknowledged`` event always counts).  Resolving
    the ticket also ends it.  It never restarts.
``update_cadence``
    The gap between vendor public updates: starts at the acknowledgment, each
    vendor public update starts a new *episode* with a fresh allowance, the
    ticket's resolution stops it and a reopen starts a new episode.  Every
    episode that overruns counts as one breach.
``resolution``
    From ``opened`` until resolved.  A reopen resumes it with the time already
    used (a breach stays a breach).

Semantics
    * A metric is *running* while it is active, the ticket is not resolved and
      the ball is with the vendor; otherwise it is *paused* (or *pending* before
      it starts, *stopped* after it ends).
    * Elapsed time is business time of the contract's calendar for
      ``business: true`` targets and plain time otherwise.
    * Threshold ``p`` is crossed at the earliest instant at which ``p`` % of the
      allowance is used (inclusive).  A metric is *breached* once it has used
      *more* than its allowance; ``due_at`` is the last instant at which it is
      still within it.  With a business calendar whose allowance runs out at
      closing time, ``due_at`` is therefore the next opening (no business time
      passes in between), while the 100 % threshold is crossed at closing time.
      A metric that stops exactly at ``due_at`` is met.
    * The ball is with the vendor until a ``ball`` event says otherwise.  The
      ball becoming ``resolved`` resolves the ticket; leaving ``resolved`` again
      reopens it.  A ``resolved`` event resolves it too and only a ``reopened``
      event (or the ball leaving ``resolved``) reopens it.

Bad input, handled deterministically and reported as :class:`ClockWarning`:
    * Events are ordered by ``(at, seq)``; an event with the same key as the one
      before it is a duplicate and ignored.
    * **Events after ``now`` are ignored (deferred), not clamped**: they are
      returned as ``deferred`` and count once ``now`` reaches their timestamp.
      Clamping would stamp them with a time that a later recompute would not
      reproduce; deferring keeps repair and incremental results identical.
    * An event other than ``ball`` before ``opened`` opens the clock
      implicitly; a second ``opened`` is ignored.  Durations are never negative.

Two ways to compute, guaranteed to agree (same fold over the same events):
:func:`repair` recomputes a :class:`SlaState` from the whole history;
:func:`advance` applies new events to a stored checkpoint and says when it
cannot (an event older than the checkpoint, a changed policy) so the caller
repairs instead.  :func:`snapshot` evaluates a state at ``now``;
:func:`sweep_status` answers "breached / which threshold" from a checkpoint
with a few comparisons and no calendar arithmetic, and :func:`next_wakeup`
says when a clock next needs looking at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from ticketbridge.sla.calendar import CALENDAR_TIME, BusinessCalendar
from ticketbridge.sla.models import AckBy, Ball, ContractConfig, PriorityTargets, Target

__all__ = [
    "Advanced",
    "ClockPolicy",
    "ClockStatus",
    "ClockWarning",
    "EventKind",
    "Metric",
    "MetricPolicy",
    "MetricSnapshot",
    "MetricState",
    "MetricStatus",
    "PauseInterval",
    "Recomputed",
    "SlaEvent",
    "SlaSnapshot",
    "SlaState",
    "ThresholdCrossing",
    "advance",
    "apply",
    "elapsed_at",
    "next_wakeup",
    "repair",
    "snapshot",
    "sweep_status",
]

_ZERO = timedelta(0)
_ONE_US = timedelta(microseconds=1)


class EventKind(StrEnum):
    OPENED = "opened"
    BALL = "ball"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    VENDOR_PUBLIC_UPDATE = "vendor_public_update"
    RESOLVED = "resolved"
    REOPENED = "reopened"


class Metric(StrEnum):
    ACKNOWLEDGMENT = "acknowledgment"
    UPDATE_CADENCE = "update_cadence"
    RESOLUTION = "resolution"


_METRICS = tuple(Metric)


class MetricStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


_ACTIVE = (MetricStatus.RUNNING, MetricStatus.PAUSED)
_ACK_TRIGGER: dict[str, EventKind] = {
    "first_public_comment": EventKind.VENDOR_PUBLIC_UPDATE,
    "in_progress": EventKind.IN_PROGRESS,
    "assigned": EventKind.ASSIGNED,
}


@dataclass(frozen=True, slots=True)
class SlaEvent:
    """Something that happened, stamped by the source system; ``seq`` orders equal times."""

    at: datetime
    kind: EventKind
    seq: int = 0
    value: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"naive event time {self.at.isoformat()}: source times must be aware")
        if self.at.tzinfo is not UTC:
            object.__setattr__(self, "at", self.at.astimezone(UTC))
        if not isinstance(self.kind, EventKind):
            object.__setattr__(self, "kind", EventKind(self.kind))

    @property
    def key(self) -> tuple[datetime, int]:
        return (self.at, self.seq)


@dataclass(frozen=True, slots=True)
class ClockWarning:
    """Something odd in the input, for the caller to log; the computation went on."""

    code: str
    message: str
    seq: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MetricPolicy:
    """One metric's allowance (``None``: tracked, never breached) and its time basis."""

    target: timedelta | None = None
    business: bool = True

    @classmethod
    def from_target(cls, target: Target | None) -> MetricPolicy:
        return cls() if target is None else cls(target.delta, target.business)


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """What a link's clocks are measured against: calendar, targets, thresholds."""

    calendar: BusinessCalendar
    acknowledgment: MetricPolicy = MetricPolicy()
    update_cadence: MetricPolicy = MetricPolicy()
    resolution: MetricPolicy = MetricPolicy()
    thresholds: tuple[int, ...] = (50, 75, 100)
    acknowledgment_by: AckBy = "first_public_comment"
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for mp in (self.acknowledgment, self.update_cadence, self.resolution):
            if mp.target is not None and mp.target <= _ZERO:
                raise ValueError("targets must be positive")
        if any(p <= 0 for p in self.thresholds):
            raise ValueError("thresholds must be positive percentages")
        if self.acknowledgment_by not in _ACK_TRIGGER:
            raise ValueError(f"unknown acknowledgment_by {self.acknowledgment_by!r}")
        object.__setattr__(self, "thresholds", tuple(sorted(set(self.thresholds))))
        parts = [self.calendar.fingerprint, self.acknowledgment_by, repr(self.thresholds)]
        for mp in (self.acknowledgment, self.update_cadence, self.resolution):
            target = "-" if mp.target is None else str(mp.target // _ONE_US)
            parts.append(f"{target}:{int(mp.business)}")
        object.__setattr__(self, "key", hashlib.sha256("|".join(parts).encode()).hexdigest()[:16])

    @classmethod
    def from_contract(
        cls, contract: ContractConfig, priority: str | None, calendar: BusinessCalendar
    ) -> ClockPolicy:
        """The policy for a ticket of ``priority`` under ``contract``.

        A priority the contract does not list gets no targets (clocks are
        tracked, never breached); :func:`~ticketbridge.sla.models.validate_sla_config`
        reports unknown priority keys up front.
        """
        targets = contract.targets_for(priority) or PriorityTargets()
        return cls(
            calendar=calendar,
            acknowledgment=MetricPolicy.from_target(targets.acknowledgment),
            update_cadence=MetricPolicy.from_target(targets.update_cadence),
            resolution=MetricPolicy.from_target(targets.resolution),
            thresholds=tuple(contract.thresholds),
            acknowledgment_by=contract.acknowledgment_by,
        )

    def metric(self, metric: Metric) -> MetricPolicy:
        if metric is Metric.ACKNOWLEDGMENT:
            return self.acknowledgment
        if metric is Metric.UPDATE_CADENCE:
            return self.update_cadence
        return self.resolution

    def basis(self, metric: Metric) -> BusinessCalendar:
        """The calendar elapsed time of ``metric`` is counted in."""
        return self.calendar if self.metric(metric).business else CALENDAR_TIME


@dataclass(frozen=True, slots=True)
class ThresholdCrossing:
    percent: int
    at: datetime
    episode: int


@dataclass(frozen=True, slots=True)
class PauseInterval:
    """The clock was paused (ball not with the vendor) from ``start`` to ``end`` (open: ``None``)."""

    start: datetime
    end: datetime | None
    ball: Ball


@dataclass(frozen=True, slots=True)
class MetricState:
    """One metric in a checkpoint; ``elapsed`` is the current episode's, up to the state's ``as_of``.

    While ``RUNNING``, ``deadline`` (the instant after which the episode is
    breached) and ``pending`` (thresholds still ahead with the instants they
    will be crossed) are precomputed so a sweep needs no calendar arithmetic.
    """

    status: MetricStatus = MetricStatus.PENDING
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    episode: int = 0
    episode_started_at: datetime | None = None
    elapsed: timedelta = _ZERO
    max_elapsed: timedelta = _ZERO
    overdue: timedelta = _ZERO
    breached_at: datetime | None = None
    breach_count: int = 0
    episode_breached_at: datetime | None = None
    level: int = 0
    crossings: tuple[ThresholdCrossing, ...] = ()
    deadline: datetime | None = None
    pending: tuple[tuple[int, datetime], ...] = ()


_METRIC_FIELDS = tuple(MetricState.__dataclass_fields__)


def _evolve(m: MetricState, **changes: Any) -> MetricState:
    """``dataclasses.replace`` without its per-field checks (it is hot in repairs)."""
    return MetricState(*[changes[f] if f in changes else getattr(m, f) for f in _METRIC_FIELDS])


@dataclass(frozen=True, slots=True)
class SlaState:
    """A compact checkpoint of one link's clocks after the events up to ``(as_of, last_seq)``."""

    policy_key: str
    as_of: datetime | None = None
    last_seq: int | None = None
    started_at: datetime | None = None
    ball: Ball = Ball.VENDOR
    resolved_at: datetime | None = None
    reopen_count: int = 0
    pauses: tuple[PauseInterval, ...] = ()
    acknowledgment: MetricState = MetricState()
    update_cadence: MetricState = MetricState()
    resolution: MetricState = MetricState()

    @classmethod
    def initial(cls, policy: ClockPolicy) -> SlaState:
        return cls(policy_key=policy.key)

    def metric(self, metric: Metric) -> MetricState:
        if metric is Metric.ACKNOWLEDGMENT:
            return self.acknowledgment
        if metric is Metric.UPDATE_CADENCE:
            return self.update_cadence
        return self.resolution

    # -- persistence ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (ISO times, durations in microseconds) for the store."""
        encoded = _encode(self)
        assert isinstance(encoded, dict)
        return encoded

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaState:
        return _decode_state(data)


@dataclass(frozen=True, slots=True)
class MetricSnapshot:
    """One metric evaluated at ``now``; ``elapsed``/``remaining``/``fraction`` are the current episode's."""

    metric: Metric
    status: MetricStatus
    target: timedelta | None
    business: bool
    started_at: datetime | None
    stopped_at: datetime | None
    episode: int
    elapsed: timedelta
    remaining: timedelta | None
    due_at: datetime | None
    fraction: float | None
    breached: bool
    breached_at: datetime | None
    breach_count: int
    overdue: timedelta
    max_elapsed: timedelta
    level: int
    crossings: tuple[ThresholdCrossing, ...]


@dataclass(frozen=True, slots=True)
class SlaSnapshot:
    now: datetime
    started_at: datetime | None
    ball: Ball
    resolved_at: datetime | None
    reopen_count: int
    pauses: tuple[PauseInterval, ...]
    acknowledgment: MetricSnapshot
    update_cadence: MetricSnapshot
    resolution: MetricSnapshot
    warnings: tuple[ClockWarning, ...] = ()

    @property
    def metrics(self) -> tuple[MetricSnapshot, MetricSnapshot, MetricSnapshot]:
        return (self.acknowledgment, self.update_cadence, self.resolution)

    @property
    def breached(self) -> bool:
        return any(m.breached for m in self.metrics)


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """What a sweep needs to know about one clock at ``now``.

    ``breaches``: metrics breached at least once, with their breach count (the
    update cadence can breach once per episode).  ``levels``: the highest
    threshold crossed in the current episode of each active metric.
    ``at_risk``: active metrics past a threshold whose current episode is not
    breached.  ``next_wakeup``: the next threshold or deadline still ahead.
    """

    breaches: tuple[tuple[Metric, int], ...]
    levels: tuple[tuple[Metric, int], ...]
    at_risk: tuple[Metric, ...]
    next_wakeup: datetime | None

    @property
    def breached(self) -> tuple[Metric, ...]:
        return tuple(metric for metric, _ in self.breaches)


@dataclass(frozen=True, slots=True)
class Recomputed:
    state: SlaState
    warnings: tuple[ClockWarning, ...]
    deferred: tuple[SlaEvent, ...]


@dataclass(frozen=True, slots=True)
class Advanced:
    """Result of :func:`advance`.  With ``needs_repair`` the state is the one passed in, unchanged."""

    state: SlaState
    warnings: tuple[ClockWarning, ...]
    deferred: tuple[SlaEvent, ...]
    needs_repair: bool = False


# -- metric transitions ------------------------------------------------------------------


def _run_to(m: MetricState, t: datetime, delta: timedelta) -> MetricState:
    """Account a running metric up to ``t`` (``delta``: its business time since the checkpoint).

    Records the thresholds crossed and the breach, if any, by ``t``.
    """
    if m.status is not MetricStatus.RUNNING:
        return m
    crossings, level, pending = m.crossings, m.level, m.pending
    if pending and pending[0][1] <= t:
        reached = [(p, at) for p, at in pending if at <= t]
        crossings = crossings + tuple(ThresholdCrossing(p, at, m.episode) for p, at in reached)
        level = max(level, reached[-1][0])
        pending = pending[len(reached) :]
    breached_at, count, episode_breached_at = m.breached_at, m.breach_count, m.episode_breached_at
    if m.deadline is not None and episode_breached_at is None and t > m.deadline:
        episode_breached_at = m.deadline
        count += 1
        breached_at = breached_at or m.deadline
    # Positional construction: this runs for every running metric on every event and sweep.
    return MetricState(
        m.status,
        m.started_at,
        m.stopped_at,
        m.episode,
        m.episode_started_at,
        m.elapsed + delta,
        m.max_elapsed,
        m.overdue,
        breached_at,
        count,
        episode_breached_at,
        level,
        crossings,
        m.deadline,
        pending,
    )


def _run_all(
    state: SlaState, policy: ClockPolicy, t: datetime
) -> tuple[MetricState, MetricState, MetricState]:
    """All three metrics accounted from the checkpoint to ``t``; each basis is computed once."""
    since = state.as_of
    metrics = (state.acknowledgment, state.update_cadence, state.resolution)
    if since is None or t < since:
        return metrics
    deltas: dict[bool, timedelta] = {}
    out: list[MetricState] = []
    for metric, m in zip(_METRICS, metrics, strict=True):
        if m.status is MetricStatus.RUNNING:
            business = policy.metric(metric).business
            delta = deltas.get(business)
            if delta is None:
                delta = deltas[business] = policy.basis(metric).business_time_between(since, t)
            m = _run_to(m, t, delta)
        out.append(m)
    return out[0], out[1], out[2]


def _arm(
    m: MetricState,
    t: datetime,
    cal: BusinessCalendar,
    mp: MetricPolicy,
    thresholds: tuple[int, ...],
) -> MetricState:
    """Set a metric running at ``t`` and precompute its deadline and threshold instants."""
    if mp.target is None:
        return _evolve(m, status=MetricStatus.RUNNING, deadline=None, pending=())
    target_us = mp.target // _ONE_US
    elapsed_us = m.elapsed // _ONE_US
    crossed = {c.percent for c in m.crossings if c.episode == m.episode}
    ahead = [p for p in thresholds if p not in crossed]
    needs = [max(target_us * p // 100 - elapsed_us, 0) for p in ahead]
    breached = m.episode_breached_at is not None
    if not breached:
        needs.append(max(target_us - elapsed_us, 0))
    instants = cal.add_business_times(t, [timedelta(microseconds=n) for n in needs])
    deadline = None if breached else cal.next_open(instants.pop())
    pending = tuple(zip(ahead, instants, strict=True))
    return _evolve(m, status=MetricStatus.RUNNING, deadline=deadline, pending=pending)


def _idle(m: MetricState, status: MetricStatus) -> MetricState:
    return _evolve(m, status=status, deadline=None, pending=())


def _start(m: MetricState, t: datetime) -> MetricState:
    return _evolve(
        _idle(m, MetricStatus.PAUSED),
        started_at=t,
        stopped_at=None,
        episode=1,
        episode_started_at=t,
    )


def _stop(m: MetricState, t: datetime) -> MetricState:
    return _evolve(_idle(m, MetricStatus.STOPPED), stopped_at=t)


def _over(elapsed: timedelta, mp: MetricPolicy) -> timedelta:
    return _ZERO if mp.target is None else max(elapsed - mp.target, _ZERO)


def _new_episode(m: MetricState, t: datetime, mp: MetricPolicy) -> MetricState:
    """Close the current episode (cadence) and start a fresh allowance at ``t``."""
    return _evolve(
        _idle(m, MetricStatus.PAUSED),
        stopped_at=None,
        episode=m.episode + 1,
        episode_started_at=t,
        max_elapsed=max(m.max_elapsed, m.elapsed),
        overdue=m.overdue + _over(m.elapsed, mp),
        elapsed=_ZERO,
        episode_breached_at=None,
        level=0,
    )


# -- the fold ------------------------------------------------------------------------------------


def _warn(code: str, message: str, event: SlaEvent) -> ClockWarning:
    return ClockWarning(code, message, event.seq, event.at)


def apply(
    state: SlaState, event: SlaEvent, policy: ClockPolicy
) -> tuple[SlaState, list[ClockWarning]]:
    """Apply one event that is not older than the checkpoint (no ``now`` check here).

    An event with the checkpoint's own key is a duplicate and ignored; an older
    one is refused with an ``out_of_order`` warning and the state unchanged.
    """
    warnings: list[ClockWarning] = []
    t = event.at
    if state.as_of is not None:
        assert state.last_seq is not None
        if event.key == (state.as_of, state.last_seq):
            warnings.append(
                _warn("duplicate_event", f"duplicate {event.kind} event ignored", event)
            )
            return state, warnings
        if event.key < (state.as_of, state.last_seq):
            warnings.append(
                _warn("out_of_order", f"{event.kind} event is older than the checkpoint", event)
            )
            return state, warnings

    ack, cad, res = _run_all(state, policy, t)
    started_at, ball, resolved_at = state.started_at, state.ball, state.resolved_at
    reopen_count = state.reopen_count
    kind = event.kind

    def resolve() -> None:
        nonlocal ack, cad, res, resolved_at
        resolved_at = t
        if ack.status in _ACTIVE:
            ack = _stop(ack, t)
        if cad.status is not MetricStatus.STOPPED:
            cad = _stop(cad, t)
        res = _stop(res, t)

    def reopen() -> None:
        nonlocal cad, res, resolved_at, reopen_count
        resolved_at = None
        reopen_count += 1
        res = _evolve(_idle(res, MetricStatus.PAUSED), stopped_at=None)
        cad = _start(cad, t) if cad.episode == 0 else _new_episode(cad, t, policy.update_cadence)

    if started_at is None and kind not in (EventKind.OPENED, EventKind.BALL):
        warnings.append(
            _warn("implicit_open", f"{kind} event before 'opened': clock started here", event)
        )
        started_at = t
        ack, res = _start(ack, t), _start(res, t)

    if kind is EventKind.OPENED:
        if started_at is not None:
            warnings.append(_warn("duplicate_open", "clock already started; ignored", event))
        else:
            started_at = t
            ack, res = _start(ack, t), _start(res, t)
    elif kind is EventKind.BALL:
        try:
            new_ball = Ball(event.value or "")
        except ValueError:
            warnings.append(
                _warn("bad_ball", f"unknown ball value {event.value!r}; ignored", event)
            )
            new_ball = ball
        if started_at is not None and new_ball is not ball:
            if new_ball is Ball.RESOLVED and resolved_at is None:
                resolve()
            elif ball is Ball.RESOLVED and resolved_at is not None:
                reopen()
            elif new_ball is Ball.VENDOR and resolved_at is not None:
                warnings.append(
                    _warn(
                        "ball_while_resolved",
                        "ball returned to the vendor on a resolved ticket; clocks stay stopped "
                        "until a 'reopened' event",
                        event,
                    )
                )
        ball = new_ball
    elif kind is EventKind.RESOLVED:
        if resolved_at is not None:
            warnings.append(_warn("duplicate_resolved", "already resolved; ignored", event))
        else:
            resolve()
    elif kind is EventKind.REOPENED:
        if resolved_at is None:
            warnings.append(_warn("reopen_unresolved", "not resolved; 'reopened' ignored", event))
        else:
            reopen()
    elif resolved_at is None:
        # acknowledged / assigned / in_progress / vendor_public_update
        acknowledges = (
            kind is EventKind.ACKNOWLEDGED or _ACK_TRIGGER[policy.acknowledgment_by] is kind
        )
        if acknowledges and ack.status in _ACTIVE:
            ack = _stop(ack, t)
            if cad.status is MetricStatus.PENDING:
                cad = _start(cad, t)
        elif kind is EventKind.VENDOR_PUBLIC_UPDATE and cad.status in _ACTIVE:
            cad = _new_episode(cad, t, policy.update_cadence)

    runs = started_at is not None and resolved_at is None and ball is Ball.VENDOR
    metrics: list[MetricState] = []
    for metric, m in (
        (Metric.ACKNOWLEDGMENT, ack),
        (Metric.UPDATE_CADENCE, cad),
        (Metric.RESOLUTION, res),
    ):
        if runs and m.status is MetricStatus.PAUSED:
            m = _arm(m, t, policy.basis(metric), policy.metric(metric), policy.thresholds)
        elif not runs and m.status is MetricStatus.RUNNING:
            m = _idle(m, MetricStatus.PAUSED)
        metrics.append(m)

    pauses = state.pauses
    paused_now = started_at is not None and resolved_at is None and ball is not Ball.VENDOR
    last = pauses[-1] if pauses and pauses[-1].end is None else None
    if last is not None and (not paused_now or last.ball is not ball):
        pauses = pauses[:-1] if last.start == t else (*pauses[:-1], replace(last, end=t))
        last = None
    if paused_now and last is None:
        pauses = (*pauses, PauseInterval(t, None, ball))

    new = SlaState(
        policy_key=state.policy_key,
        as_of=t,
        last_seq=event.seq,
        started_at=started_at,
        ball=ball,
        resolved_at=resolved_at,
        reopen_count=reopen_count,
        pauses=pauses,
        acknowledgment=metrics[0],
        update_cadence=metrics[1],
        resolution=metrics[2],
    )
    return new, warnings


def repair(events: Iterable[SlaEvent], policy: ClockPolicy, now: datetime) -> Recomputed:
    """Recompute a link's clocks from its whole history (in any order) as of ``now``."""
    warnings: list[ClockWarning] = []
    deferred: list[SlaEvent] = []
    state = SlaState.initial(policy)
    for event in sorted(events, key=_order):
        if event.at > now:
            deferred.append(event)
            warnings.append(_warn("future_event", f"{event.kind} event after now; deferred", event))
            continue
        state, more = apply(state, event, policy)
        warnings.extend(more)
    return Recomputed(state, tuple(warnings), tuple(deferred))


def advance(
    state: SlaState, events: Iterable[SlaEvent], policy: ClockPolicy, now: datetime
) -> Advanced:
    """Apply new events to a checkpoint; same result as :func:`repair` over the whole history.

    Events after ``now`` come back in ``deferred`` (pass them again later).
    ``needs_repair`` is set, and the input state returned untouched, when an
    event is older than the checkpoint or the checkpoint was made under another
    policy: call :func:`repair` with the full history then.
    """
    if state.policy_key != policy.key:
        if state.as_of is not None:
            warning = ClockWarning("policy_changed", "checkpoint was made under another policy")
            return Advanced(state, (warning,), (), needs_repair=True)
        state = SlaState.initial(policy)
    original = state
    warnings: list[ClockWarning] = []
    deferred: list[SlaEvent] = []
    for event in sorted(events, key=_order):
        if event.at > now:
            deferred.append(event)
            warnings.append(_warn("future_event", f"{event.kind} event after now; deferred", event))
            continue
        if (
            state.as_of is not None
            and state.last_seq is not None
            and event.key < (state.as_of, state.last_seq)
        ):
            warnings.append(
                _warn("out_of_order", f"{event.kind} event is older than the checkpoint", event)
            )
            return Advanced(original, tuple(warnings), (), needs_repair=True)
        state, more = apply(state, event, policy)
        warnings.extend(more)
    return Advanced(state, tuple(warnings), tuple(deferred))


def _order(event: SlaEvent) -> tuple[datetime, int]:
    return event.key


# -- evaluation ------------------------------------------------------------------------------


def _metric_snapshot(metric: Metric, m: MetricState, mp: MetricPolicy) -> MetricSnapshot:
    target = mp.target
    running = m.status is MetricStatus.RUNNING
    due_at = None
    if running:
        due_at = m.episode_breached_at or m.deadline
    return MetricSnapshot(
        metric=metric,
        status=m.status,
        target=target,
        business=mp.business,
        started_at=m.started_at,
        stopped_at=m.stopped_at,
        episode=m.episode,
        elapsed=m.elapsed,
        remaining=None if target is None else max(target - m.elapsed, _ZERO),
        due_at=due_at,
        fraction=None if target is None else m.elapsed / target,
        breached=m.breached_at is not None,
        breached_at=m.breached_at,
        breach_count=m.breach_count,
        overdue=m.overdue + _over(m.elapsed, mp),
        max_elapsed=max(m.max_elapsed, m.elapsed),
        level=m.level,
        crossings=m.crossings,
    )


def snapshot(state: SlaState, policy: ClockPolicy, now: datetime) -> SlaSnapshot:
    """The clocks of ``state`` evaluated at ``now`` (elapsed, remaining, breach, crossings)."""
    warnings: list[ClockWarning] = []
    if state.as_of is not None and now < state.as_of:
        warnings.append(
            ClockWarning("now_before_checkpoint", "now is before the last event; using its time")
        )
        now = state.as_of
    out = [
        _metric_snapshot(metric, m, policy.metric(metric))
        for metric, m in zip(_METRICS, _run_all(state, policy, now), strict=True)
    ]
    return SlaSnapshot(
        now=now,
        started_at=state.started_at,
        ball=state.ball,
        resolved_at=state.resolved_at,
        reopen_count=state.reopen_count,
        pauses=state.pauses,
        acknowledgment=out[0],
        update_cadence=out[1],
        resolution=out[2],
        warnings=tuple(warnings),
    )


def elapsed_at(
    state: SlaState, policy: ClockPolicy, now: datetime
) -> tuple[timedelta, timedelta, timedelta]:
    """Elapsed time of (acknowledgment, update cadence, resolution) at ``now`` from a checkpoint.

    The cadence value is the current episode's.  One calendar look-up per time
    basis: O(1) amortised, whatever the age of the checkpoint.
    """
    since = state.as_of
    metrics = (state.acknowledgment, state.update_cadence, state.resolution)
    if since is None or now <= since:
        return metrics[0].elapsed, metrics[1].elapsed, metrics[2].elapsed
    deltas: dict[bool, timedelta] = {}
    out: list[timedelta] = []
    for metric, m in zip(_METRICS, metrics, strict=True):
        elapsed = m.elapsed
        if m.status is MetricStatus.RUNNING:
            business = policy.metric(metric).business
            delta = deltas.get(business)
            if delta is None:
                delta = deltas[business] = policy.basis(metric).business_time_between(since, now)
            elapsed += delta
        out.append(elapsed)
    return out[0], out[1], out[2]


def sweep_status(state: SlaState, now: datetime) -> ClockStatus:
    """Breach and threshold status at ``now`` from the checkpoint alone: O(thresholds), no calendar."""
    breaches: list[tuple[Metric, int]] = []
    levels: list[tuple[Metric, int]] = []
    at_risk: list[Metric] = []
    wake: datetime | None = None
    for metric, m in zip(
        _METRICS, (state.acknowledgment, state.update_cadence, state.resolution), strict=True
    ):
        count = m.breach_count
        status = m.status
        if status is MetricStatus.RUNNING:
            episode_breached = m.episode_breached_at is not None
            deadline = m.deadline
            if deadline is not None and not episode_breached:
                if now > deadline:
                    count += 1
                    episode_breached = True
                elif wake is None or deadline < wake:
                    wake = deadline
            level = m.level
            for p, at in m.pending:
                if at > now:
                    if wake is None or at < wake:
                        wake = at
                    break
                level = p
            levels.append((metric, level))
            if level and not episode_breached:
                at_risk.append(metric)
        elif status is MetricStatus.PAUSED:
            levels.append((metric, m.level))
            if m.level and m.episode_breached_at is None:
                at_risk.append(metric)
        if count:
            breaches.append((metric, count))
    return ClockStatus(tuple(breaches), tuple(levels), tuple(at_risk), wake)


def next_wakeup(state: SlaState) -> datetime | None:
    """The next instant a threshold is crossed or a deadline passes if nothing changes."""
    wake: datetime | None = None
    for m in (state.acknowledgment, state.update_cadence, state.resolution):
        if m.status is not MetricStatus.RUNNING:
            continue
        candidates = [at for _, at in m.pending[:1]]
        if m.deadline is not None and m.episode_breached_at is None:
            candidates.append(m.deadline)
        for at in candidates:
            if wake is None or at < wake:
                wake = at
    return wake


# -- checkpoint encoding ------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value // _ONE_US
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _encode(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"naive time {value!r} in checkpoint")
    return parsed.astimezone(UTC)


def _req_dt(value: Any) -> datetime:
    parsed = _dt(value)
    if parsed is None:
        raise ValueError("missing time in checkpoint")
    return parsed


def _decode_metric(data: Mapping[str, Any]) -> MetricState:
    return MetricState(
        status=MetricStatus(data["status"]),
        started_at=_dt(data["started_at"]),
        stopped_at=_dt(data["stopped_at"]),
        episode=int(data["episode"]),
        episode_started_at=_dt(data["episode_started_at"]),
        elapsed=timedelta(microseconds=int(data["elapsed"])),
        max_elapsed=timedelta(microseconds=int(data["max_elapsed"])),
        overdue=timedelta(microseconds=int(data["overdue"])),
        breached_at=_dt(data["breached_at"]),
        breach_count=int(data["breach_count"]),
        episode_breached_at=_dt(data["episode_breached_at"]),
        level=int(data["level"]),
        crossings=tuple(
            ThresholdCrossing(int(c["percent"]), _req_dt(c["at"]), int(c["episode"]))
            for c in data["crossings"]
        ),
        deadline=_dt(data["deadline"]),
        pending=tuple((int(p), _req_dt(at)) for p, at in data["pending"]),
    )


def _decode_state(data: Mapping[str, Any]) -> SlaState:
    return SlaState(
        policy_key=str(data["policy_key"]),
        as_of=_dt(data["as_of"]),
        last_seq=None if data["last_seq"] is None else int(data["last_seq"]),
        started_at=_dt(data["started_at"]),
        ball=Ball(data["ball"]),
        resolved_at=_dt(data["resolved_at"]),
        reopen_count=int(data["reopen_count"]),
        pauses=tuple(
            PauseInterval(_req_dt(p["start"]), _dt(p["end"]), Ball(p["ball"]))
            for p in data["pauses"]
        ),
        acknowledgment=_decode_metric(data["acknowledgment"]),
        update_cadence=_decode_metric(data["update_cadence"]),
        resolution=_decode_metric(data["resolution"]),
    )
