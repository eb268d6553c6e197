"""Escalation chains: snapshots taken at start, durable progress, and a pure planner.

Snapshot
    When a rule's chain starts on a ticket, :meth:`ChainSnapshot.from_rule`
    copies everything that decides its behaviour (conditions, steps, waits,
    windows, actions, templates, stop conditions) into a frozen value with a
    content digest.  The snapshot is stored with the ticket's progress, so
    editing the rule later does not change a running chain.

Timing (all due times are computed once and stored)
    * A step's ``after`` is counted from the *previous step's first run* (its
      due time, not when it was executed); the first step counts from the
      chain's start.  So a step deferred by a window pushes later steps back.
    * A step runs once, then ``repeat`` more times ``every`` apart, each
      counted from the previous repetition's due time.  Repetitions never hold
      back the next step.
    * ``only_between``: a run due outside the window is deferred to the
      window's next opening (local wall-clock hours, weekdays, DST-aware via
      :class:`~ticketbridge.sla.calendar.BusinessCalendar`).
    * A ``client_update`` with ``every`` is a cadence: compiled into a step of
      its own that starts with its parent step and repeats until the chain
      stops; missed cadence ticks are coalesced (``catch_up: latest``).

Exactly once
    Progress records, per step, how many runs are done and the due time of
    the next one.  :func:`plan` returns every run due at ``now`` (all of them
    after an outage, in due-time order) and a new progress with them marked
    done.  Nothing is marked anywhere else: the caller stores the new progress
    in the same transaction as the intents, so a crash before commit re-plans
    the same runs (same keys) and a commit never lets a run come back.

Stopping
    ``stop_when`` reasons are edge-triggered: a reason stops the chain when it
    becomes true while the chain runs (a reason already true at start is
    ignored until it has been seen false).  The chain stops at the instant the
    facts give (``acknowledged_at``, ``resolved_at``, ``closed_at``,
    ``ball_since``), else at ``now``; overdue runs due *before* that instant
    still run, the others are cancelled.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from ticketbridge.rules.conditions import CompiledCondition, Subject, compile_when_data
from ticketbridge.rules.facts import Facts
from ticketbridge.rules.models import (
    Action,
    ClientUpdateAction,
    RuleModel,
    StepModel,
    When,
    WindowModel,
    format_duration,
    parse_days,
)
from ticketbridge.sla.calendar import WEEKDAYS, BusinessCalendar, parse_interval
from ticketbridge.sla.models import Ball

__all__ = [
    "SNAPSHOT_FORMAT",
    "ChainProgress",
    "ChainSnapshot",
    "DueRun",
    "Plan",
    "RunKey",
    "StepProgress",
    "StepSnapshot",
    "Window",
    "WindowResolver",
    "hours_calendar",
    "plan",
    "snapshot_from_data",
    "start_chain",
    "stop_reasons_now",
    "upcoming_runs",
    "window_resolver",
]

SNAPSHOT_FORMAT = 1

_ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive time {value!r} in rules state")
    return parsed.astimezone(UTC)


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _delta(value: Any) -> timedelta | None:
    return None if value is None else timedelta(seconds=int(value))


# -- windows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """An ``only_between`` window: local ``hours`` on ``days`` (empty: every day) in ``timezone``,
    or the working hours of the business calendar named ``calendar``."""

    hours: tuple[str, ...] = ()
    days: tuple[int, ...] = ()
    timezone: str = "UTC"
    calendar: str | None = None

    @classmethod
    def from_model(cls, model: WindowModel, default_timezone: str) -> Window:
        if model.calendar is not None:
            return cls(calendar=model.calendar)
        assert model.hours is not None
        days = parse_days(model.days) if model.days is not None else ()
        return cls(
            hours=tuple(model.hours),
            days=() if len(days) == 7 else days,
            timezone=model.timezone or default_timezone,
        )

    def to_data(self) -> dict[str, Any]:
        if self.calendar is not None:
            return {"calendar": self.calendar}
        return {"hours": list(self.hours), "days": list(self.days), "timezone": self.timezone}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Window:
        if data.get("calendar") is not None:
            return cls(calendar=str(data["calendar"]))
        return cls(
            hours=tuple(str(h) for h in data["hours"]),
            days=tuple(int(d) for d in data.get("days") or ()),
            timezone=str(data.get("timezone") or "UTC"),
        )

    def describe(self) -> str:
        if self.calendar is not None:
            return f"within calendar {self.calendar!r}"
        days = "every day" if not self.days else ",".join(WEEKDAYS[d] for d in self.days)
        return f"only {', '.join(self.hours)} {days} ({self.timezone})"


@functools.lru_cache(maxsize=256)
def hours_calendar(
    hours: tuple[str, ...], days: tuple[int, ...], timezone: str
) -> BusinessCalendar:
    """The calendar of a hours window (cached; ``ValueError`` for overlapping hours)."""
    intervals = [parse_interval(h) for h in hours]
    return BusinessCalendar(
        weekly={d: intervals for d in (days or range(7))},
        timezone=timezone,
        name=f"window {','.join(hours)}",
    )


#: Maps a window to the calendar that decides when it is open (``None``: always open).
WindowResolver = Callable[[Window], BusinessCalendar | None]


def window_resolver(calendars: Mapping[str, BusinessCalendar] | None = None) -> WindowResolver:
    """A resolver for hours windows and the named business ``calendars``.

    A calendar name that is no longer configured resolves to ``None`` (always
    open): a run is never held back forever by a missing calendar.
    """
    named = dict(calendars or {})

    def resolve(window: Window) -> BusinessCalendar | None:
        if window.calendar is not None:
            return named.get(window.calendar)
        return hours_calendar(window.hours, window.days, window.timezone)

    return resolve


def _defer(at: datetime, window: Window | None, resolve: WindowResolver) -> datetime:
    if window is None:
        return at
    calendar = resolve(window)
    return at if calendar is None else calendar.next_open(at)


# -- snapshots ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepSnapshot:
    """One compiled step.  ``repeat`` ``None``: repeats until the chain stops (a cadence).

    ``actions`` pairs each action with its index in the YAML step (idempotency
    keys and explanations use it).
    """

    label: str
    after: timedelta
    repeat: int | None
    every: timedelta | None
    window: Window | None
    when: When | None
    catch_up: str
    actions: tuple[tuple[int, Action], ...]

    @property
    def runs(self) -> int | None:
        """How many times the step runs in all (``None``: until the chain stops)."""
        return None if self.repeat is None else 1 + self.repeat

    def to_data(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "after": _seconds(self.after),
            "repeat": self.repeat,
            "every": _seconds(self.every),
            "window": None if self.window is None else self.window.to_data(),
            "when": None if self.when is None else self.when.as_data(),
            "catch_up": self.catch_up,
            "actions": [
                {"index": i, "action": a.model_dump(mode="json", exclude_none=True)}
                for i, a in self.actions
            ],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepSnapshot:
        after = _delta(data["after"])
        assert after is not None
        window = data.get("window")
        when = data.get("when")
        return cls(
            label=str(data["label"]),
            after=after,
            repeat=None if data["repeat"] is None else int(data["repeat"]),
            every=_delta(data.get("every")),
            window=None if window is None else Window.from_data(window),
            when=None if when is None else When.model_validate(when),
            catch_up=str(data.get("catch_up", "all")),
            actions=tuple(
                (int(a["index"]), _ACTION_ADAPTER.validate_python(a["action"]))
                for a in data["actions"]
            ),
        )

    def describe(self) -> str:
        parts = [f"after {format_duration(self.after)}"]
        if self.repeat is None and self.every is not None:
            parts.append(f"then every {format_duration(self.every)} until the chain stops")
        elif self.repeat:
            assert self.every is not None
            parts.append(f"repeat {self.repeat}x every {format_duration(self.every)}")
        if self.window is not None:
            parts.append(self.window.describe())
        return ", ".join(parts)


def _digest(data: Mapping[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _compile_steps(rule: RuleModel, timezone: str) -> tuple[StepSnapshot, ...]:
    out: list[StepSnapshot] = []
    single = rule.chain is None
    for i, step in enumerate(rule.steps):
        out.extend(_compile_step(step, "actions" if single else f"chain[{i}]", timezone))
    return tuple(out)


def _compile_step(step: StepModel, label: str, timezone: str) -> list[StepSnapshot]:
    window = None if step.only_between is None else Window.from_model(step.only_between, timezone)
    regular: list[tuple[int, Action]] = []
    cadence: list[tuple[int, ClientUpdateAction]] = []
    for k, action in enumerate(step.actions):
        if isinstance(action, ClientUpdateAction) and action.every is not None:
            cadence.append((k, action))
        else:
            regular.append((k, action))
    out: list[StepSnapshot] = []
    if regular:
        out.append(
            StepSnapshot(
                label=label,
                after=step.after,
                repeat=step.repeat,
                every=step.every,
                window=window,
                when=step.when,
                catch_up=step.catch_up,
                actions=tuple(regular),
            )
        )
    for k, action in cadence:
        out.append(
            StepSnapshot(
                label=f"actions[{k}]" if label == "actions" else f"{label}.actions[{k}]",
                # Starts with its parent step: 0 after the step just emitted.
                after=timedelta(0) if out else step.after,
                repeat=None,
                every=action.every,
                window=window,
                when=step.when,
                catch_up="latest",
                actions=((k, action),),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class ChainSnapshot:
    """A rule's chain as it was when it started on a ticket; ``digest`` hashes its content."""

    rule: str
    source: str
    description: str
    when: When
    steps: tuple[StepSnapshot, ...]
    stop_when: tuple[str, ...]
    rearm: bool
    digest: str = field(init=False, compare=False)
    _data: dict[str, Any] = field(init=False, compare=False, repr=False)
    _compiled: dict[int, CompiledCondition | None] = field(init=False, compare=False, repr=False)
    _shared: dict[str, Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        data = self._build_data()
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_compiled", {})
        object.__setattr__(self, "digest", _digest(data))
        object.__setattr__(self, "_shared", {**data, "digest": self.digest})

    def _build_data(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "rule": self.rule,
            "source": self.source,
            "description": self.description,
            "when": self.when.as_data(),
            "steps": [s.to_data() for s in self.steps],
            "stop_when": list(self.stop_when),
            "rearm": self.rearm,
        }

    @classmethod
    def from_rule(
        cls, rule: RuleModel, *, source: str = "", timezone: str = "UTC"
    ) -> ChainSnapshot:
        """The snapshot of ``rule`` now; ``timezone`` is the default zone of its windows."""
        return cls(
            rule=rule.name,
            source=source,
            description=rule.description,
            when=rule.when,
            steps=_compile_steps(rule, timezone),
            stop_when=tuple(rule.stop_when),
            rearm=rule.rearm,
        )

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data, digest included (a fresh copy: the caller may keep or change it)."""
        out = json.loads(json.dumps(self._data))
        out["digest"] = self.digest
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ChainSnapshot:
        """Rebuild from :meth:`to_data`; ``ValueError`` if the content does not match its digest."""
        body = {k: v for k, v in data.items() if k != "digest"}
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown chain snapshot format {body.get('format')!r}")
        stored = data.get("digest")
        if stored != _digest(body):
            raise ValueError(f"chain snapshot of {body.get('rule')!r} does not match its digest")
        snap = cls(
            rule=str(body["rule"]),
            source=str(body.get("source", "")),
            description=str(body.get("description", "")),
            when=When.model_validate(body.get("when") or {}),
            steps=tuple(StepSnapshot.from_data(s) for s in body["steps"]),
            stop_when=tuple(str(s) for s in body.get("stop_when", ())),
            rearm=bool(body.get("rearm", False)),
        )
        # Keep the stored content and digest as they are, so the snapshot's identity
        # survives even if this version would encode the same chain differently.
        object.__setattr__(snap, "_data", json.loads(json.dumps(body)))
        object.__setattr__(snap, "digest", str(stored))
        object.__setattr__(snap, "_shared", {**snap._data, "digest": snap.digest})
        return snap

    def shared_data(self) -> dict[str, Any]:
        """Like :meth:`to_data` without copying: one dict shared by every state holding this
        snapshot.  Read-only by contract (states are serialised, never edited in place)."""
        return self._shared

    def compiled_when(self) -> CompiledCondition:
        """The snapshot's own conditions (for ``conditions_false``), compiled once."""
        cached = self._compiled.get(-1)
        if cached is None:
            cached = self._compiled[-1] = compile_when_data(self._data["when"])
        return cached

    def compiled_step_when(self, index: int) -> CompiledCondition | None:
        """A step's own ``when``, compiled once (``None``: the step has none)."""
        if index in self._compiled:
            return self._compiled[index]
        data = self._data["steps"][index]["when"]
        compiled = (
            None if data is None else compile_when_data(data, f"{self.steps[index].label}.when")
        )
        self._compiled[index] = compiled
        return compiled


_SNAPSHOT_CACHE: dict[str, ChainSnapshot] = {}
_SNAPSHOT_CACHE_MAX = 4096


def snapshot_from_data(data: Mapping[str, Any]) -> ChainSnapshot:
    """:meth:`ChainSnapshot.from_data`, cached by digest (states repeat the same few snapshots)."""
    digest = data.get("digest")
    if isinstance(digest, str):
        hit = _SNAPSHOT_CACHE.get(digest)
        if hit is not None and hit.rule == data.get("rule"):
            return hit
    snap = ChainSnapshot.from_data(data)
    if len(_SNAPSHOT_CACHE) >= _SNAPSHOT_CACHE_MAX:
        _SNAPSHOT_CACHE.clear()
    _SNAPSHOT_CACHE[snap.digest] = snap
    return snap


# -- progress -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunKey:
    """One run of one step: stable across restarts, the root of every idempotency key."""

    rule: str
    epoch: int
    step: int
    repetition: int

    def __str__(self) -> str:
        head = self.rule if self.epoch == 0 else f"{self.rule}#{self.epoch}"
        return f"{head}/{self.step}/{self.repetition}"


@dataclass(frozen=True, slots=True)
class StepProgress:
    """``done`` runs of the step are behind us; ``next_due`` is when run number ``done`` is due
    (``None``: the step has no more runs); ``last_due`` the due time of the latest done run."""

    done: int = 0
    next_due: datetime | None = None
    last_due: datetime | None = None

    def to_data(self) -> dict[str, Any]:
        return {"done": self.done, "next_due": _iso(self.next_due), "last_due": _iso(self.last_due)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepProgress:
        return cls(int(data["done"]), _dt(data.get("next_due")), _dt(data.get("last_due")))


@dataclass(frozen=True, slots=True)
class ChainProgress:
    """Where a chain stands on one ticket.

    ``armed_stops``: the ``stop_when`` reasons seen false since the start (only
    those can stop the chain).  ``stopped_at``/``stop_reason`` once stopped.
    """

    epoch: int
    started_at: datetime
    steps: tuple[StepProgress, ...]
    armed_stops: tuple[str, ...] = ()
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def finished(self) -> bool:
        """Every step has run all its runs."""
        return all(s.next_due is None for s in self.steps)

    @property
    def active(self) -> bool:
        return self.stopped_at is None and not self.finished

    @property
    def next_due_at(self) -> datetime | None:
        if self.stopped_at is not None:
            return None
        dues = [s.next_due for s in self.steps if s.next_due is not None]
        return min(dues) if dues else None

    def executed(self, rule: str) -> tuple[RunKey, ...]:
        """The runs behind us (fired, skipped, coalesced), step by step."""
        return tuple(
            RunKey(rule, self.epoch, i, r) for i, s in enumerate(self.steps) for r in range(s.done)
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "started_at": _iso(self.started_at),
            "steps": [s.to_data() for s in self.steps],
            "armed_stops": list(self.armed_stops),
            "stopped_at": _iso(self.stopped_at),
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ChainProgress:
        started = _dt(data["started_at"])
        assert started is not None
        return cls(
            epoch=int(data.get("epoch", 0)),
            started_at=started,
            steps=tuple(StepProgress.from_data(s) for s in data["steps"]),
            armed_stops=tuple(str(r) for r in data.get("armed_stops", ())),
            stopped_at=_dt(data.get("stopped_at")),
            stop_reason=data.get("stop_reason"),
        )


def start_chain(
    snapshot: ChainSnapshot,
    started_at: datetime,
    *,
    resolve: WindowResolver | None = None,
    epoch: int = 0,
    armed_stops: Iterable[str] = (),
) -> ChainProgress:
    """Progress of a chain starting at ``started_at``: every step's first due time."""
    resolve = resolve or window_resolver()
    base = started_at.astimezone(UTC)
    steps: list[StepProgress] = []
    for step in snapshot.steps:
        due = _defer(base + step.after, step.window, resolve)
        steps.append(StepProgress(0, due, None))
        base = due
    return ChainProgress(
        epoch=epoch,
        started_at=started_at.astimezone(UTC),
        steps=tuple(steps),
        armed_stops=tuple(r for r in snapshot.stop_when if r in set(armed_stops)),
    )


def _following(
    step: StepSnapshot, done: int, due: datetime, resolve: WindowResolver
) -> datetime | None:
    """The due time of the run after run number ``done - 1`` (due at ``due``)."""
    runs = step.runs
    if runs is not None and done >= runs:
        return None
    assert step.every is not None
    return _defer(due + step.every, step.window, resolve)


# -- stopping -------------------------------------------------------------------------------------


def _subject(facts: Facts | Subject) -> Subject:
    return facts if isinstance(facts, Subject) else Subject(facts)


def stop_reasons_now(snapshot: ChainSnapshot, facts: Facts | Subject) -> dict[str, datetime | None]:
    """The ``stop_when`` reasons that hold now, each with the instant it began if the facts say."""
    s = _subject(facts)
    f = s.facts
    out: dict[str, datetime | None] = {}
    for reason in snapshot.stop_when:
        if reason == "acknowledged" and f.acknowledged:
            out[reason] = f.acknowledged_at
        elif reason == "resolved" and (f.link.resolved or f.psa.closed):
            out[reason] = f.resolved_at if f.link.resolved else f.psa.closed_at
        elif reason == "closed" and f.psa.closed:
            out[reason] = f.psa.closed_at
        elif reason == "ball_not_vendor" and f.link.ball is not Ball.VENDOR:
            out[reason] = f.link.ball_since
        elif reason == "conditions_false" and not snapshot.compiled_when().test(s):
            out[reason] = None
    return out


# -- planning ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueRun:
    """A run: its key, due time, the step's label, and the step's previous run's due time."""

    key: RunKey
    due_at: datetime
    label: str
    previous_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What :func:`plan` decided.

    ``due``: runs to execute now, in order.  ``coalesced``: overdue cadence
    runs folded into a later one.  ``cancelled``: overdue runs that fell after
    the chain stopped.  ``progress``: the new progress, with all of these
    behind it.  ``upcoming``: the next runs if nothing stops the chain.
    """

    due: tuple[DueRun, ...]
    coalesced: tuple[DueRun, ...]
    cancelled: tuple[DueRun, ...]
    progress: ChainProgress
    upcoming: tuple[DueRun, ...]
    stopped: str | None = None

    @property
    def next_due_at(self) -> datetime | None:
        return self.progress.next_due_at


def upcoming_runs(
    snapshot: ChainSnapshot, progress: ChainProgress, resolve: WindowResolver, count: int
) -> tuple[DueRun, ...]:
    """The next ``count`` runs of an active chain after its progress, if nothing stops it."""
    if not progress.active or count <= 0:
        return ()
    out: list[DueRun] = []
    for i, (step, sp) in enumerate(zip(snapshot.steps, progress.steps, strict=True)):
        done, due, last = sp.done, sp.next_due, sp.last_due
        for _ in range(count):
            if due is None:
                break
            out.append(
                DueRun(RunKey(snapshot.rule, progress.epoch, i, done), due, step.label, last)
            )
            done, last = done + 1, due
            due = _following(step, done, due, resolve)
    out.sort(key=lambda r: (r.due_at, r.key.step, r.key.repetition))
    return tuple(out[:count])


def _overdue_runs(
    snapshot: ChainSnapshot,
    progress: ChainProgress,
    index: int,
    now: datetime,
    resolve: WindowResolver,
) -> list[DueRun]:
    """Every run of step ``index`` due by ``now``, in order.

    An unbounded cadence without a window steps through its ticks by plain
    arithmetic (no calendar look-ups), however long the outage was.
    """
    step = snapshot.steps[index]
    sp = progress.steps[index]
    rule, epoch = snapshot.rule, progress.epoch
    done, due, last = sp.done, sp.next_due, sp.last_due
    out: list[DueRun] = []
    while due is not None and due <= now:
        if (
            step.catch_up == "latest"
            and step.window is None
            and step.every is not None
            and step.repeat is None
        ):
            # Unbounded cadence without a window: jump to the latest overdue tick.
            k = (now - due) // step.every
            if k > 1:
                for rep in range(done, done + k):
                    tick = due + (rep - done) * step.every
                    out.append(DueRun(RunKey(rule, epoch, index, rep), tick, step.label, last))
                    last = tick
                done, due = done + k, due + k * step.every
                continue
        out.append(DueRun(RunKey(rule, epoch, index, done), due, step.label, last))
        done, last = done + 1, due
        due = _following(step, done, due, resolve)
    return out


def plan(
    snapshot: ChainSnapshot,
    progress: ChainProgress,
    facts: Facts | Subject,
    now: datetime,
    *,
    resolve: WindowResolver | None = None,
    lookahead: int = 0,
) -> Plan:
    """The runs of a chain due at ``now`` and the progress after them.  Pure.

    Every run due by ``now`` comes back exactly once, in due-time order (step,
    then repetition, on ties), unless the chain stopped before it was due
    (``cancelled``) or a later run of the same cadence replaces it (``coalesced``).
    ``lookahead`` > 0 also lists that many runs still ahead (``upcoming``).
    When nothing is due and nothing changed, the returned progress *is* the
    given one.
    """
    resolve = resolve or window_resolver()
    if len(progress.steps) != len(snapshot.steps):
        raise ValueError(
            f"progress has {len(progress.steps)} steps, snapshot of {snapshot.rule!r} has "
            f"{len(snapshot.steps)}"
        )
    if not progress.active:
        return Plan((), (), (), progress, ())

    holding = stop_reasons_now(snapshot, facts)
    armed = set(progress.armed_stops) | {r for r in snapshot.stop_when if r not in holding}
    stop_now = {r: at for r, at in holding.items() if r in progress.armed_stops}
    cutoff: datetime | None = None
    reason: str | None = None
    if stop_now:
        instants = {r: (at if at is not None and at <= now else now) for r, at in stop_now.items()}
        reason = min(instants, key=lambda r: (instants[r], snapshot.stop_when.index(r)))
        cutoff = instants[reason]

    overdue: list[DueRun] = []
    for i in range(len(snapshot.steps)):
        overdue.extend(_overdue_runs(snapshot, progress, i, now, resolve))
    if not overdue and reason is None and armed == set(progress.armed_stops):
        # The common case of a sweep: nothing due, nothing changed.
        return Plan((), (), (), progress, upcoming_runs(snapshot, progress, resolve, lookahead))
    overdue.sort(key=lambda r: (r.due_at, r.key.step, r.key.repetition))

    fire: list[DueRun] = []
    cancelled: list[DueRun] = []
    for run in overdue:
        if cutoff is not None and run.due_at >= cutoff:
            cancelled.append(run)
        else:
            fire.append(run)

    # A 'latest' step fires only its last overdue run; the earlier ones are coalesced.
    latest: dict[int, DueRun] = {}
    for run in fire:
        if snapshot.steps[run.key.step].catch_up == "latest":
            latest[run.key.step] = run
    coalesced = [r for r in fire if latest.get(r.key.step, r) is not r]
    fire = [r for r in fire if latest.get(r.key.step, r) is r]

    # Move each step past what fired, was coalesced or was cancelled.
    steps = list(progress.steps)
    last_handled: dict[int, DueRun] = {}
    for run in (*fire, *coalesced, *cancelled):
        seen = last_handled.get(run.key.step)
        if seen is None or run.key.repetition > seen.key.repetition:
            last_handled[run.key.step] = run
    for i, run in last_handled.items():
        done = run.key.repetition + 1
        steps[i] = StepProgress(
            done, _following(snapshot.steps[i], done, run.due_at, resolve), run.due_at
        )
    new = replace(
        progress,
        steps=tuple(steps),
        armed_stops=tuple(r for r in snapshot.stop_when if r in armed),
    )
    if reason is not None:
        new = replace(new, stopped_at=cutoff, stop_reason=reason)
    upcoming = upcoming_runs(snapshot, new, resolve, lookahead)
    return Plan(tuple(fire), tuple(coalesced), tuple(cancelled), new, upcoming, stopped=reason)
