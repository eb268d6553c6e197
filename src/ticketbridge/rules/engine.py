"""Evaluating a rule set over one link: pure, restart-safe, explainable.

:func:`evaluate` takes the rule set, the link's :class:`~ticketbridge.rules.facts.Facts`,
the link's stored rules *state* (a JSON-ready dict, ``None`` for a new link)
and ``now``, and returns an :class:`Evaluation`: the rules that match, the
chains that start (with their snapshots), the runs that fire, the intents to
emit, and the new state.  It reads nothing and writes nothing.

Restart semantics
    The state records, per rule, the chain snapshot, its start and, per step,
    how many runs are behind it and when the next is due.  Evaluating at any
    later ``now`` returns every run due since, exactly once, in due-time order,
    and marks them done *only in the returned state*.  The caller commits the
    intents (outbox rows) and the new state in one transaction; if it crashes
    before the commit, the next evaluation returns the same runs with the same
    idempotency keys; after the commit they never come back.  Nothing is
    skipped for being late.

State format (``format: 1``)::

    {
      "format": 1,
      "chains": {
        "<rule name>": {
          "snapshot": {...ChainSnapshot.to_data()...} | null,   # null once ended
          "digest": "<snapshot digest>",
          "progress": {
            "epoch": 0, "started_at": "<iso>",
            "steps": [{"done": 1, "next_due": "<iso>|null", "last_due": "<iso>|null"}, ...],
            "armed_stops": ["resolved", ...],
            "stopped_at": "<iso>|null", "stop_reason": "<reason>|null"
          },
          "rearm_ready": false          # conditions seen false since the chain ended
        }
      },
      "escalation": {"level": 0, "tier": null, "escalated": false, "escalated_at": null}
    }

Escalation record
    Runs that fire an escalation (an action whose kind is ``escalation``: moving the
    PSA ticket, setting the vendor's priority or a field, e-mailing the vendor) set
    ``escalated``;
    a move to a tier raises ``level`` to that tier's position (Tier 1 = 0).
    Conditions see ``max(facts level, recorded level)`` and ``facts or
    recorded`` escalated; the engine may copy the record into its link rows.
    Within one pass every rule sees the facts as they were at its start.

Rule edits
    A running chain follows its snapshot.  A chain of a rule that was removed
    or disabled stops (``rule_removed``).  ``rearm: true`` lets a rule start a
    new chain (next epoch, fresh snapshot) once its conditions have been false
    and hold again; without it a rule runs at most once per link.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ticketbridge.rules.actions import (
    ActionFailed,
    ActionSkipped,
    AddNote,
    Intent,
    MovePsaTicket,
    Notify,
    OpenLessonsLearned,
    SendEmail,
    SetVendorField,
    SetVendorPriority,
    base_context,
    describe_action,
    render_run,
    run_context,
)
from ticketbridge.rules.chains import (
    ChainProgress,
    ChainSnapshot,
    DueRun,
    Plan,
    plan,
    snapshot_from_data,
    start_chain,
    stop_reasons_now,
    upcoming_runs,
)
from ticketbridge.rules.conditions import Outcome, Subject
from ticketbridge.rules.facts import Facts
from ticketbridge.rules.loader import CompiledRule, RuleSet

__all__ = [
    "STATE_FORMAT",
    "ChainStart",
    "ChainStop",
    "Escalation",
    "Evaluation",
    "Explanation",
    "RuleReport",
    "Simulation",
    "SkippedRun",
    "describe_intent",
    "escalation_from_state",
    "evaluate",
    "explain",
    "next_ready_at",
    "next_turn_at",
    "simulate",
]

STATE_FORMAT = 1


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value)).astimezone(UTC)


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Escalation:
    """What the rules escalated on a link: highest tier position reached, and whether at all."""

    level: int = 0
    tier: str | None = None
    escalated: bool = False
    escalated_at: datetime | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "tier": self.tier,
            "escalated": self.escalated,
            "escalated_at": _iso(self.escalated_at),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Escalation:
        if not data:
            return cls()
        return cls(
            level=int(data.get("level", 0)),
            tier=data.get("tier"),
            escalated=bool(data.get("escalated", False)),
            escalated_at=_dt(data.get("escalated_at")),
        )


@dataclass(frozen=True, slots=True)
class ChainStart:
    rule: str
    epoch: int
    snapshot: ChainSnapshot


@dataclass(frozen=True, slots=True)
class ChainStop:
    rule: str
    epoch: int
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SkippedRun:
    """A run whose step condition (``when``) failed when it was due: done, no actions."""

    run: DueRun
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of one evaluation of one link.

    ``runs`` fired in order and produced ``intents`` (what to write),
    ``failed`` (actions that could not be prepared: alert an operator) and
    ``skipped`` (actions with nothing to do).  ``state`` is the new state to
    store with the intents; ``changed`` says whether it differs from the input
    (when not, ``state`` is the input object itself).  The new state shares
    unchanged parts with the input and snapshot data with other links' states:
    serialise it, never edit it in place.  ``next_due_at`` is the earliest run
    still ahead, for the scheduler (conditions that start to hold later, e.g.
    ``age_over``, are noticed by the next evaluation; ``explain`` predicts them).
    """

    link_id: str
    now: datetime
    matched: tuple[str, ...]
    started: tuple[ChainStart, ...]
    stopped: tuple[ChainStop, ...]
    runs: tuple[DueRun, ...]
    intents: tuple[Intent, ...]
    failed: tuple[ActionFailed, ...]
    skipped: tuple[ActionSkipped, ...]
    skipped_runs: tuple[SkippedRun, ...]
    coalesced: tuple[DueRun, ...]
    cancelled: tuple[DueRun, ...]
    state: Mapping[str, Any]
    changed: bool
    next_due_at: datetime | None
    warnings: tuple[str, ...] = ()


def escalation_from_state(state: Mapping[str, Any] | None) -> Escalation:
    """The rules' escalation record stored in a link's state."""
    return Escalation.from_data((state or {}).get("escalation"))


# -- state helpers ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Chain:
    """A chain entry of the state, decoded lazily."""

    raw: Mapping[str, Any]
    progress: ChainProgress
    snapshot: ChainSnapshot | None

    @classmethod
    def decode(cls, raw: Mapping[str, Any]) -> _Chain:
        snap = raw.get("snapshot")
        return cls(
            raw=raw,
            progress=ChainProgress.from_data(raw["progress"]),
            snapshot=None if snap is None else snapshot_from_data(snap),
        )


def _encode_chain(
    snapshot: ChainSnapshot | None, progress: ChainProgress, *, digest: str, rearm_ready: bool
) -> dict[str, Any]:
    keep = progress.active and snapshot is not None
    return {
        "snapshot": snapshot.shared_data() if keep and snapshot is not None else None,
        "digest": digest,
        "progress": progress.to_data(),
        "rearm_ready": rearm_ready,
    }


@dataclass(slots=True)
class _Pass:
    """Mutable scratch space of one evaluation."""

    ruleset: RuleSet
    subject: Subject
    now: datetime
    chains: dict[str, Any]
    changed: bool = False
    matched: list[str] = field(default_factory=list)
    started: list[ChainStart] = field(default_factory=list)
    stopped: list[ChainStop] = field(default_factory=list)
    fired: list[tuple[DueRun, int, ChainSnapshot]] = field(default_factory=list)
    coalesced: list[DueRun] = field(default_factory=list)
    cancelled: list[DueRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plans: dict[str, tuple[ChainSnapshot, Plan]] = field(default_factory=dict)

    def put(self, name: str, entry: dict[str, Any]) -> None:
        self.chains[name] = entry
        self.changed = True

    def take(self, rule_index: int, snapshot: ChainSnapshot, p: Plan) -> None:
        self.fired.extend((run, rule_index, snapshot) for run in p.due)
        self.coalesced.extend(p.coalesced)
        self.cancelled.extend(p.cancelled)
        self.plans[snapshot.rule] = (snapshot, p)
        if p.stopped is not None and p.progress.stopped_at is not None:
            self.stopped.append(
                ChainStop(snapshot.rule, p.progress.epoch, p.stopped, p.progress.stopped_at)
            )


def _subject(ruleset: RuleSet, facts: Facts, esc: Escalation) -> Subject:
    psa = facts.psa
    tier = psa.tier if psa.tier is not None else ruleset.tier_of(psa.queue, psa.group, psa.assignee)
    return Subject(
        facts,
        tier=tier,
        escalation_level=max(facts.link.escalation_level, esc.level),
        escalated=facts.link.escalated or esc.escalated,
    )


def _start(p: _Pass, index: int, rule: CompiledRule, epoch: int) -> None:
    snapshot = rule.snapshot
    holding = stop_reasons_now(snapshot, p.subject)
    armed = [r for r in snapshot.stop_when if r not in holding]
    progress = start_chain(
        snapshot, p.now, resolve=p.ruleset.resolve, epoch=epoch, armed_stops=armed
    )
    p.started.append(ChainStart(rule.name, epoch, snapshot))
    result = plan(snapshot, progress, p.subject, p.now, resolve=p.ruleset.resolve)
    p.take(index, snapshot, result)
    p.put(
        rule.name,
        _encode_chain(snapshot, result.progress, digest=snapshot.digest, rearm_ready=False),
    )


def _advance(p: _Pass, index: int, name: str, chain: _Chain) -> None:
    snapshot = chain.snapshot
    if snapshot is None:  # pragma: no cover - active chains always keep their snapshot
        raise ValueError(f"state of {name!r} lost the snapshot of a running chain")
    result = plan(snapshot, chain.progress, p.subject, p.now, resolve=p.ruleset.resolve)
    p.take(index, snapshot, result)
    if result.progress is not chain.progress and result.progress != chain.progress:
        p.put(
            name,
            _encode_chain(
                snapshot, result.progress, digest=str(chain.raw.get("digest")), rearm_ready=False
            ),
        )


def _decode_state(state: Mapping[str, Any] | None) -> tuple[dict[str, Any], Escalation]:
    if not state:
        return {}, Escalation()
    fmt = state.get("format", STATE_FORMAT)
    if fmt != STATE_FORMAT:
        raise ValueError(f"unknown rules state format {fmt!r}")
    return dict(state.get("chains") or {}), Escalation.from_data(state.get("escalation"))


def _record_escalation(
    ruleset: RuleSet, esc: Escalation, intents: Iterable[Intent], runs: Mapping[str, DueRun]
) -> Escalation:
    level, tier, escalated, at = esc.level, esc.tier, esc.escalated, esc.escalated_at
    for intent in intents:
        if not intent.escalates:
            continue
        due = runs[str(intent.run)].due_at
        if not escalated:
            escalated, at = True, due
        if isinstance(intent, MovePsaTicket) and intent.tier is not None:
            position = ruleset.directory.tier_index(intent.tier)
            if position is not None and position >= level:
                level, tier = position, intent.tier
    return Escalation(level, tier, escalated, at)


def evaluate(
    ruleset: RuleSet,
    facts: Facts,
    state: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Evaluation:
    """Evaluate every rule over one link at ``now`` (default ``facts.now``).  Pure."""
    if now is not None and now != facts.now:
        facts = facts.at(now)
    now = facts.now
    chains, esc = _decode_state(state)
    candidates = ruleset.candidates(facts.psa.priority, facts.psa.queue)
    if not candidates and not chains:
        return _quiet(facts, state)
    subject = _subject(ruleset, facts, esc)
    p = _Pass(ruleset, subject, now, chains)

    indexes = set(candidates)
    for name in chains:
        index = ruleset.index_of(name)
        if index is not None:
            indexes.add(index)
        else:
            _stop_removed(p, name, chains[name])
    for index in sorted(indexes):
        _one_rule(p, index)

    return _finish(p, state, esc)


def _quiet(facts: Facts, state: Mapping[str, Any] | None) -> Evaluation:
    """The evaluation of a link no rule can concern: nothing happens, the state stays."""
    return Evaluation(
        link_id=facts.link_id,
        now=facts.now,
        matched=(),
        started=(),
        stopped=(),
        runs=(),
        intents=(),
        failed=(),
        skipped=(),
        skipped_runs=(),
        coalesced=(),
        cancelled=(),
        state=state if state is not None else {},
        changed=False,
        next_due_at=None,
    )


def _stop_removed(p: _Pass, name: str, raw: Mapping[str, Any]) -> None:
    chain = _Chain.decode(raw)
    if not chain.progress.active:
        return
    progress = ChainProgress(
        epoch=chain.progress.epoch,
        started_at=chain.progress.started_at,
        steps=chain.progress.steps,
        armed_stops=chain.progress.armed_stops,
        stopped_at=p.now,
        stop_reason="rule_removed",
    )
    p.stopped.append(ChainStop(name, progress.epoch, "rule_removed", p.now))
    p.put(
        name,
        _encode_chain(None, progress, digest=str(raw.get("digest")), rearm_ready=False),
    )


def _raw_active(raw: Mapping[str, Any]) -> bool:
    """Whether a stored chain still runs, read without decoding it."""
    progress = raw["progress"]
    if progress.get("stopped_at") is not None:
        return False
    return any(step.get("next_due") is not None for step in progress["steps"])


def _one_rule(p: _Pass, index: int) -> None:
    rule = p.ruleset.rules[index]
    raw = p.chains.get(rule.name)
    holds = rule.condition.test(p.subject)
    if holds:
        p.matched.append(rule.name)
    if raw is None:
        if holds:
            _start(p, index, rule, 0)
        return
    if _raw_active(raw):
        _advance(p, index, rule.name, _Chain.decode(raw))
        return
    if not rule.model.rearm:
        return
    ready = bool(raw.get("rearm_ready", False))
    if not holds and not ready:
        p.put(rule.name, {**raw, "rearm_ready": True})
    elif holds and ready:
        _start(p, index, rule, int(raw["progress"].get("epoch", 0)) + 1)


def _finish(p: _Pass, state: Mapping[str, Any] | None, esc: Escalation) -> Evaluation:
    p.fired.sort(key=lambda x: (x[0].due_at, x[1], x[0].key.step, x[0].key.repetition))
    intents: list[Intent] = []
    failed: list[ActionFailed] = []
    skipped: list[ActionSkipped] = []
    skipped_runs: list[SkippedRun] = []
    runs: list[DueRun] = []
    base: dict[str, Any] | None = None
    for run, _index, snapshot in p.fired:
        runs.append(run)
        step = snapshot.steps[run.key.step]
        step_when = snapshot.compiled_step_when(run.key.step)
        if step_when is not None and not step_when.test(p.subject):
            failing = step_when.explain(p.subject).failed()
            reason = "; ".join(o.reason for o in failing) or "step conditions do not hold"
            skipped_runs.append(SkippedRun(run, reason))
            continue
        if base is None:
            base = base_context(p.subject)
        context = run_context(base, rule=snapshot.rule, description=snapshot.description, run=run)
        outcome = render_run(
            run,
            step,
            p.subject,
            p.ruleset.directory,
            description=snapshot.description,
            context=context,
        )
        intents.extend(outcome.intents)
        failed.extend(outcome.failed)
        skipped.extend(outcome.skipped)

    new_esc = _record_escalation(p.ruleset, esc, intents, {str(r.key): r for r in runs})
    changed = p.changed or new_esc != esc
    if changed:
        new_state: Mapping[str, Any] = {
            "format": STATE_FORMAT,
            "chains": p.chains,
            "escalation": new_esc.to_data(),
        }
    else:
        new_state = state if state is not None else {}
    dues = [pl.progress.next_due_at for _, pl in p.plans.values()]
    next_due = min((d for d in dues if d is not None), default=None)
    return Evaluation(
        link_id=p.subject.facts.link_id,
        now=p.now,
        matched=tuple(p.matched),
        started=tuple(p.started),
        stopped=tuple(p.stopped),
        runs=tuple(runs),
        intents=tuple(intents),
        failed=tuple(failed),
        skipped=tuple(skipped),
        skipped_runs=tuple(skipped_runs),
        coalesced=tuple(p.coalesced),
        cancelled=tuple(p.cancelled),
        state=new_state,
        changed=changed,
        next_due_at=next_due,
        warnings=tuple(p.warnings),
    )


# -- explain --------------------------------------------------------------------------------------


def describe_intent(intent: Intent) -> str:
    """One line per intent, for rehearsals and logs."""
    if isinstance(intent, MovePsaTicket):
        parts = [
            f"{k} {v!r}"
            for k, v in (
                ("tier", intent.tier),
                ("queue", intent.queue),
                ("group", intent.group),
                ("assignee", intent.assignee),
                ("status", intent.status),
            )
            if v is not None
        ]
        return "move PSA ticket: " + ", ".join(parts)
    if isinstance(intent, SetVendorPriority):
        return f"set vendor priority to {intent.priority!r}"
    if isinstance(intent, SetVendorField):
        return f"set vendor field {intent.field!r} to {intent.value!r}"
    if isinstance(intent, AddNote):
        where = "PSA" if intent.side.value == "psa" else "vendor"
        first = intent.text.strip().splitlines()[0] if intent.text.strip() else ""
        return f"{intent.visibility.value} note on the {where} ticket: {first[:80]}"
    if isinstance(intent, SendEmail):
        return f"e-mail {', '.join(intent.to)}: {intent.subject[:80]}"
    if isinstance(intent, Notify):
        return f"notify {intent.recipient} by {intent.channel}: {intent.text.strip()[:80]}"
    if isinstance(intent, OpenLessonsLearned):
        return f"open lessons-learned record: {intent.summary[:80]}"
    if isinstance(intent, ActionFailed):
        return f"FAILED {intent.action_type}: {intent.message}"
    if isinstance(intent, ActionSkipped):
        return f"skipped {intent.action_type}: {intent.reason}"
    return intent.kind


@dataclass(frozen=True, slots=True)
class UpcomingRun:
    run: DueRun
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleReport:
    """One rule in an explanation: its conditions, its chain on this link, what comes next."""

    name: str
    source: str
    description: str
    matched: bool
    conditions: Outcome
    chain: str
    epoch: int | None
    digest: str | None
    snapshot_outdated: bool
    fired_now: tuple[str, ...]
    upcoming: tuple[UpcomingRun, ...]
    would_start_at: datetime | None

    def lines(self) -> list[str]:
        head = "MATCHES" if self.matched else "does not match"
        out = [f"rule {self.name} [{self.source}]: {head}"]
        if self.description:
            out.append(f"  {self.description.strip().splitlines()[0]}")
        out.extend("  " + line for line in self.conditions.lines())
        chain = f"  chain: {self.chain}"
        if self.digest is not None:
            chain += f" (snapshot {self.digest}, epoch {self.epoch})"
        out.append(chain)
        if self.snapshot_outdated:
            out.append(
                "  note: the rule was edited since this chain started; it keeps its snapshot"
            )
        out.extend(f"  fired now: {line}" for line in self.fired_now)
        if self.would_start_at is not None:
            out.append(
                f"  would start at {self.would_start_at:%Y-%m-%d %H:%M} UTC if nothing else changes"
            )
        for up in self.upcoming:
            out.append(
                f"  next: {up.run.label} #{up.run.key.repetition} at "
                f"{up.run.due_at:%Y-%m-%d %H:%M} UTC: {'; '.join(up.actions)}"
            )
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """``rules explain``: every rule, matched or not, and what fires next and when."""

    link_id: str
    now: datetime
    tier: str | None
    escalation: Escalation
    rules: tuple[RuleReport, ...]
    evaluation: Evaluation

    def render(self) -> str:
        f = self.evaluation
        lines = [
            f"link {self.link_id} at {self.now:%Y-%m-%d %H:%M} UTC: tier {self.tier or '-'}, "
            f"escalation level {self.escalation.level}"
            + (", escalated" if self.escalation.escalated else ""),
            (
                f"{len(f.matched)} of {len(self.rules)} rules match; "
                f"{len(f.intents)} intent(s) would be emitted now"
            ),
        ]
        for report in self.rules:
            lines.append("")
            lines.extend(report.lines())
        return "\n".join(lines)

    def next_run(self) -> UpcomingRun | None:
        """The earliest run ahead across all rules."""
        ahead = [u for r in self.rules for u in r.upcoming]
        return min(ahead, key=lambda u: u.run.due_at, default=None)


def _upcoming_runs(
    snapshot: ChainSnapshot, progress: ChainProgress, ruleset: RuleSet, count: int
) -> tuple[UpcomingRun, ...]:
    out = []
    for run in upcoming_runs(snapshot, progress, ruleset.resolve, count):
        step = snapshot.steps[run.key.step]
        out.append(UpcomingRun(run, tuple(describe_action(a) for _, a in step.actions)))
    return tuple(out)


def next_ready_at(
    ruleset: RuleSet,
    facts: Facts,
    state: Mapping[str, Any] | None = None,
) -> datetime | None:
    """The earliest instant a rule not yet started on this link would start by time alone.

    Only conditions that time makes true (ticket age, vendor silence...) have such an
    instant; the caller stores it as the link's timer so no periodic re-evaluation is
    needed for them.  ``None``: nothing becomes true by waiting.
    """
    chains, esc = _decode_state(state)
    subject = _subject(ruleset, facts, esc)
    ready: datetime | None = None
    for index in ruleset.candidates(facts.psa.priority, facts.psa.queue):
        rule = ruleset.rules[index]
        if rule.name in chains:
            continue
        outcome = rule.condition.explain(subject)
        at = outcome.ready_at
        if (
            not outcome.passed
            and at is not None
            and at > facts.now
            and (ready is None or at < ready)
        ):
            ready = at
    return ready


def next_turn_at(
    ruleset: RuleSet,
    facts: Facts,
    state: Mapping[str, Any] | None = None,
) -> datetime | None:
    """The earliest instant after ``facts.now`` at which the conditions of a rule that can
    apply to this link (its priority and queue's, or one with a chain on it) may change
    their answer by time alone (ticket age, vendor silence, SLA progress, business hours).

    Stored as the link's timer, it lets a rules pass skip every link whose conditions
    cannot have changed since its last evaluation.  ``None``: only a change to the link
    can change them.
    """
    chains, esc = _decode_state(state)
    subject = _subject(ruleset, facts, esc)
    indexes = set(ruleset.candidates(facts.psa.priority, facts.psa.queue))
    for name in chains:
        index = ruleset.index_of(name)
        if index is not None:
            indexes.add(index)
    turn: datetime | None = None
    for index in indexes:
        at = ruleset.rules[index].condition.turns_at(subject)
        if at is not None and (turn is None or at < turn):
            turn = at
    return turn


def explain(
    ruleset: RuleSet,
    facts: Facts,
    state: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    *,
    lookahead: int = 3,
) -> Explanation:
    """Which rules match, which conditions fail and why, and what fires next and when.

    Evaluates first (without storing anything): "fired now" lists what an
    evaluation at ``now`` would emit; "next" the runs after that.
    """
    if now is not None and now != facts.now:
        facts = facts.at(now)
    now = facts.now
    evaluation = evaluate(ruleset, facts, state, now)
    chains, _ = _decode_state(evaluation.state)
    _, esc_before = _decode_state(state)
    subject = _subject(ruleset, facts, esc_before)
    esc = escalation_from_state(evaluation.state)
    fired: dict[str, list[str]] = {}
    for intent in (*evaluation.intents, *evaluation.failed, *evaluation.skipped):
        fired.setdefault(intent.rule, []).append(describe_intent(intent))
    for skipped in evaluation.skipped_runs:
        fired.setdefault(skipped.run.key.rule, []).append(
            f"{skipped.run.label} skipped: {skipped.reason}"
        )
    reports = []
    for rule in ruleset.rules:
        outcome = rule.condition.explain(subject)
        raw = chains.get(rule.name)
        epoch = digest = None
        outdated = False
        upcoming: tuple[UpcomingRun, ...] = ()
        would_start = None
        if raw is None:
            status = "not started"
            if not outcome.passed and outcome.ready_at is not None and outcome.ready_at > now:
                would_start = outcome.ready_at
                progress = start_chain(rule.snapshot, would_start, resolve=ruleset.resolve)
                upcoming = _upcoming_runs(rule.snapshot, progress, ruleset, lookahead)
        else:
            chain = _Chain.decode(raw)
            progress = chain.progress
            epoch, digest = progress.epoch, str(raw.get("digest"))
            outdated = digest != rule.snapshot.digest
            if progress.stopped_at is not None:
                status = (
                    f"stopped ({progress.stop_reason}) at {progress.stopped_at:%Y-%m-%d %H:%M} UTC"
                )
            elif progress.finished:
                status = "finished"
            else:
                done = sum(s.done for s in progress.steps)
                status = (
                    f"running since {progress.started_at:%Y-%m-%d %H:%M} UTC, {done} run(s) done"
                )
                assert chain.snapshot is not None
                upcoming = _upcoming_runs(chain.snapshot, progress, ruleset, lookahead)
            if not progress.active and rule.model.rearm:
                status += "; rearms when the conditions are false and then hold again"
        reports.append(
            RuleReport(
                name=rule.name,
                source=rule.source,
                description=rule.model.description,
                matched=outcome.passed,
                conditions=outcome,
                chain=status,
                epoch=epoch,
                digest=digest,
                snapshot_outdated=outdated,
                fired_now=tuple(fired.get(rule.name, ())),
                upcoming=upcoming,
                would_start_at=would_start,
            )
        )
    return Explanation(
        link_id=facts.link_id,
        now=now,
        tier=subject.tier,
        escalation=esc,
        rules=tuple(reports),
        evaluation=evaluation,
    )


# -- simulate ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Simulation:
    """``rules simulate``: what every link would do at ``at``; nothing was stored or sent."""

    at: datetime
    evaluations: tuple[Evaluation, ...]

    @property
    def intents(self) -> tuple[Intent, ...]:
        return tuple(i for e in self.evaluations for i in e.intents)

    def render(self) -> str:
        busy = [e for e in self.evaluations if e.runs or e.started or e.stopped or e.failed]
        runs = sum(len(e.runs) for e in self.evaluations)
        failures = sum(len(e.failed) for e in self.evaluations)
        head = (
            f"rehearsal at {self.at:%Y-%m-%d %H:%M} UTC over {len(self.evaluations)} link(s): "
            f"{runs} run(s), {len(self.intents)} intent(s), {failures} failure(s)"
        )
        lines = [head]
        for e in busy:
            lines.append(f"link {e.link_id}: matches {', '.join(e.matched) or '-'}")
            for start in e.started:
                lines.append(f"  starts {start.rule} (epoch {start.epoch})")
            for stop in e.stopped:
                lines.append(f"  stops {stop.rule}: {stop.reason} at {stop.at:%Y-%m-%d %H:%M}")
            for intent in (*e.intents, *e.failed):
                lines.append(f"  [{intent.run}] {describe_intent(intent)}")
        return "\n".join(lines)


def simulate(
    ruleset: RuleSet,
    facts_list: Sequence[Facts],
    at: datetime,
    states: Mapping[str, Mapping[str, Any]] | None = None,
) -> Simulation:
    """Dry-run every rule over every link as if it were ``at``.

    Facts are re-stamped with ``at`` (time-based conditions use it; SLA facts
    should have been computed at ``at`` by the caller).  ``states`` maps link
    id to stored state.  Pure: the new states are in the evaluations, for
    inspection only.
    """
    if at.tzinfo is None:
        raise ValueError("simulate needs an aware datetime")
    at = at.astimezone(UTC)
    states = states or {}
    out = [evaluate(ruleset, f, states.get(f.link_id), at) for f in facts_list]
    return Simulation(at, tuple(out))


def state_json(state: Mapping[str, Any]) -> str:
    """The state as compact JSON (what the engine stores)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"))
