"""Conditions: compiled once from a :class:`~ticketbridge.rules.models.When`, tested per link.

:func:`compile_when` turns the YAML conditions into a tree of small nodes.
Each node has two ways to run:

``test(subject) -> bool``
    the fast path used by every evaluation pass: short-circuits, allocates
    nothing, compares pre-normalised strings;
``explain(subject) -> Outcome``
    the slow, thorough path used by ``rules explain``: every leaf is evaluated
    and carries a human reason (``"priority is 'Priority 3 - Normal Response',
    needs one of ['Priority 1 - Emergency Response']"``) and, for a failing
    time-based leaf, ``ready_at``: when it will hold if nothing else changes.

Semantics
    * Several keys in one mapping must all hold; ``any`` needs one of its
      entries, ``all`` every entry, ``not`` inverts.  An empty ``when`` holds.
    * Strings compare ignoring case and repeated whitespace; a list means
      "one of".  A value the ticket does not have (``None``) matches nothing.
    * ``age_over``, ``vendor_silent_for``, ``sla.elapsed_over`` are *at least*
      (``>=``); ``age_under``, ``sla.elapsed_under``, ``sla.remaining_under``
      are *strictly less*.
    * ``vendor_silent_for`` counts from the vendor's last public update, or
      from when the link was made if the vendor never updated.
    * ``business_hours`` with unknown hours (``None`` in the facts) fails.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ticketbridge.rules.facts import Facts, MetricFacts
from ticketbridge.rules.models import SlaCondition, When, format_duration
from ticketbridge.sla.models import Ball

__all__ = [
    "CompiledCondition",
    "Outcome",
    "Subject",
    "compile_when",
    "compile_when_data",
    "norm",
]


@functools.lru_cache(maxsize=8192)
def norm(value: str) -> str:
    """Case- and whitespace-insensitive form of a name."""
    return " ".join(value.split()).casefold()


class Subject:
    """What conditions look at: the facts plus values the rule set derives.

    ``tier`` is the PSA ticket's tier (from the facts, else from the rule
    set's tier table); ``escalation_level`` / ``escalated`` combine the facts
    with the rules' own record of what they escalated.
    """

    __slots__ = ("escalated", "escalation_level", "facts", "tier")

    def __init__(
        self,
        facts: Facts,
        *,
        tier: str | None = None,
        escalation_level: int | None = None,
        escalated: bool | None = None,
    ) -> None:
        self.facts = facts
        self.tier = tier if tier is not None else facts.psa.tier
        self.escalation_level = (
            facts.link.escalation_level if escalation_level is None else escalation_level
        )
        self.escalated = facts.link.escalated if escalated is None else escalated


@dataclass(frozen=True, slots=True)
class Outcome:
    """One node's result: ``children`` for combinators, ``ready_at`` for a failing timed test."""

    path: str
    key: str
    passed: bool
    reason: str
    children: tuple[Outcome, ...] = ()
    ready_at: datetime | None = None

    def leaves(self) -> tuple[Outcome, ...]:
        """Every leaf below (or this node if it is one), in order."""
        if not self.children:
            return (self,)
        out: list[Outcome] = []
        for child in self.children:
            out.extend(child.leaves())
        return tuple(out)

    def failed(self) -> tuple[Outcome, ...]:
        return tuple(leaf for leaf in self.leaves() if not leaf.passed)

    def lines(self, indent: int = 0) -> list[str]:
        """Printable lines: ``[pass]``/``[FAIL]`` with the reason, nested by combinator."""
        mark = "[pass]" if self.passed else "[FAIL]"
        pad = "  " * indent
        line = f"{pad}{mark} {self.reason}"
        if self.ready_at is not None and not self.passed:
            line += f" -> holds from {self.ready_at:%Y-%m-%d %H:%M} UTC"
        out = [line]
        for child in self.children:
            out.extend(child.lines(indent + 1))
        return out


class _Node:
    __slots__ = ("key", "path")

    def __init__(self, path: str, key: str) -> None:
        self.path = path
        self.key = key

    def test(self, s: Subject) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, s: Subject) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def turns_at(self, s: Subject) -> datetime | None:
        """The earliest instant after ``now`` at which :meth:`test` may give another answer
        by time alone (nothing else about the link changing); ``None``: time alone never
        changes it.  A lower bound: the answer may still be the same then."""
        return None


#: The smallest step of time: a strict bound holds from this long after it is reached.
_TICK = timedelta(microseconds=1)


def _later(at: datetime | None, now: datetime) -> datetime | None:
    return at if at is not None and at > now else None


def _earliest(times: Sequence[datetime | None]) -> datetime | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None


def _show(values: Sequence[str]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


class _OneOf(_Node):
    """A string attribute is one of the listed values."""

    __slots__ = ("get", "label", "shown", "wanted")

    def __init__(
        self,
        path: str,
        key: str,
        label: str,
        get: Callable[[Subject], str | None],
        values: Sequence[str],
    ) -> None:
        super().__init__(path, key)
        self.get = get
        self.label = label
        self.shown = tuple(values)
        self.wanted = frozenset(norm(v) for v in values)

    def test(self, s: Subject) -> bool:
        value = self.get(s)
        return value is not None and norm(value) in self.wanted

    def explain(self, s: Subject) -> Outcome:
        value = self.get(s)
        passed = value is not None and norm(value) in self.wanted
        if value is None:
            reason = f"{self.label} is not set, needs one of {_show(self.shown)}"
        elif passed:
            reason = f"{self.label} is {value!r} (one of {_show(self.shown)})"
        else:
            reason = f"{self.label} is {value!r}, needs one of {_show(self.shown)}"
        return Outcome(self.path, self.key, passed, reason)


class _BallIs(_Node):
    __slots__ = ("wanted",)

    def __init__(self, path: str, values: Sequence[Ball]) -> None:
        super().__init__(path, "ball")
        self.wanted = frozenset(values)

    def test(self, s: Subject) -> bool:
        return s.facts.link.ball in self.wanted

    def explain(self, s: Subject) -> Outcome:
        ball = s.facts.link.ball
        passed = ball in self.wanted
        shown = _show(sorted(b.value for b in self.wanted))
        if passed:
            reason = f"ball is with {ball.value!r} (one of {shown})"
        else:
            reason = f"ball is with {ball.value!r}, needs one of {shown}"
        return Outcome(self.path, self.key, passed, reason)


class _Flag(_Node):
    """A yes/no fact equals the wanted value; ``None`` (unknown) never matches."""

    __slots__ = ("get", "label", "wanted")

    def __init__(
        self, path: str, key: str, label: str, get: Callable[[Subject], bool | None], wanted: bool
    ) -> None:
        super().__init__(path, key)
        self.get = get
        self.label = label
        self.wanted = wanted

    def test(self, s: Subject) -> bool:
        return self.get(s) is self.wanted

    def turns_at(self, s: Subject) -> datetime | None:
        if self.key == "business_hours":
            return _later(s.facts.business_hours_until, s.facts.now)
        if self.key == "breached":  # a running clock reaches its deadline
            sla = s.facts.sla
            if sla is None or s.facts.breached:
                return None
            return _earliest(
                [
                    _SlaTest.deadline(m, s.facts.now)
                    for m in (sla.acknowledgment, sla.update_cadence, sla.resolution)
                ]
            )
        return None

    def explain(self, s: Subject) -> Outcome:
        value = self.get(s)
        passed = value is self.wanted
        want = "yes" if self.wanted else "no"
        if value is None:
            reason = f"{self.label}: unknown, needs {want}"
        else:
            shown = "yes" if value else "no"
            reason = f"{self.label}: {shown}" + ("" if passed else f", needs {want}")
        return Outcome(self.path, self.key, passed, reason)


class _Level(_Node):
    __slots__ = ("below", "bound")

    def __init__(self, path: str, key: str, bound: int, *, below: bool) -> None:
        super().__init__(path, key)
        self.bound = bound
        self.below = below

    def test(self, s: Subject) -> bool:
        level = s.escalation_level
        return level < self.bound if self.below else level >= self.bound

    def explain(self, s: Subject) -> Outcome:
        level = s.escalation_level
        passed = self.test(s)
        need = f"below {self.bound}" if self.below else f"at least {self.bound}"
        reason = f"escalation level is {level}" + (f" ({need})" if passed else f", needs {need}")
        return Outcome(self.path, self.key, passed, reason)


class _Age(_Node):
    """The PSA ticket's age is at least (``over``) or below (``under``) a duration."""

    __slots__ = ("limit", "over")

    def __init__(self, path: str, key: str, limit: timedelta, *, over: bool) -> None:
        super().__init__(path, key)
        self.limit = limit
        self.over = over

    def test(self, s: Subject) -> bool:
        age = s.facts.age
        if age is None:
            return False
        return age >= self.limit if self.over else age < self.limit

    def turns_at(self, s: Subject) -> datetime | None:
        created = s.facts.psa.created_at
        return None if created is None else _later(created + self.limit, s.facts.now)

    def explain(self, s: Subject) -> Outcome:
        age = s.facts.age
        need = ("at least " if self.over else "under ") + format_duration(self.limit)
        if age is None:
            return Outcome(self.path, self.key, False, f"ticket age unknown, needs {need}")
        passed = self.test(s)
        reason = f"ticket age {format_duration(age)}" + (
            f" ({need})" if passed else f", needs {need}"
        )
        ready = None
        created = s.facts.psa.created_at
        if not passed and self.over and created is not None:
            ready = created + self.limit
        return Outcome(self.path, self.key, passed, reason, ready_at=ready)


def _silent_since(facts: Facts) -> datetime | None:
    link = facts.link
    return link.vendor_last_public_update_at or link.linked_at


class _Silent(_Node):
    """The vendor has posted no public update for at least a duration."""

    __slots__ = ("limit",)

    def __init__(self, path: str, limit: timedelta) -> None:
        super().__init__(path, "vendor_silent_for")
        self.limit = limit

    def test(self, s: Subject) -> bool:
        since = _silent_since(s.facts)
        return since is not None and s.facts.now - since >= self.limit

    def turns_at(self, s: Subject) -> datetime | None:
        since = _silent_since(s.facts)
        return None if since is None else _later(since + self.limit, s.facts.now)

    def explain(self, s: Subject) -> Outcome:
        since = _silent_since(s.facts)
        need = f"at least {format_duration(self.limit)}"
        if since is None:
            return Outcome(
                self.path, self.key, False, f"no vendor ticket or update time known, needs {need}"
            )
        silent = s.facts.now - since
        passed = silent >= self.limit
        what = (
            "since its last public update"
            if s.facts.link.vendor_last_public_update_at is not None
            else "since the link was made (no public update yet)"
        )
        reason = f"vendor silent for {format_duration(silent)} {what}" + (
            f" ({need})" if passed else f", needs {need}"
        )
        return Outcome(
            self.path, self.key, passed, reason, ready_at=None if passed else since + self.limit
        )


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


class _SlaTest(_Node):
    """One test of an ``sla:`` block on one metric."""

    __slots__ = ("metric", "test_name", "value")

    def __init__(self, path: str, metric: str, test_name: str, value: Any) -> None:
        super().__init__(path, f"sla.{test_name}")
        self.metric = metric
        self.test_name = test_name
        self.value = value

    def _m(self, s: Subject) -> MetricFacts | None:
        sla = s.facts.sla
        return None if sla is None else sla.metric(self.metric)

    def test(self, s: Subject) -> bool:
        m = self._m(s)
        return m is not None and self._check(m)

    @staticmethod
    def deadline(m: MetricFacts, now: datetime) -> datetime | None:
        """When a running clock may breach at the earliest (business time runs no faster
        than calendar time)."""
        if not m.running or m.breached:
            return None
        if m.due_at is not None:
            return _later(m.due_at, now)
        return None if m.remaining is None else _later(now + m.remaining, now)

    def turns_at(self, s: Subject) -> datetime | None:
        m = self._m(s)
        if m is None or not m.running:
            return None  # a paused or stopped clock moves only on events
        now = s.facts.now
        name = self.test_name
        if name in ("elapsed_over", "elapsed_under"):
            if m.target is None:
                return None
            pct: float = self.value
            return _later(now + (m.target * (pct / 100) - m.elapsed), now)
        if name == "remaining_under":
            if m.remaining is None:
                return None
            limit: timedelta = self.value
            # strictly less: it holds from the first instant after the remainder equals it
            return _later(now + (m.remaining - limit) + _TICK, now)
        if name == "breached":
            return self.deadline(m, now)
        return None  # status: moved by events

    def _check(self, m: MetricFacts) -> bool:
        name = self.test_name
        if name == "elapsed_over":
            return m.elapsed_fraction is not None and m.elapsed_fraction * 100 >= self.value
        if name == "elapsed_under":
            return m.elapsed_fraction is not None and m.elapsed_fraction * 100 < self.value
        if name == "remaining_under":
            return m.remaining is not None and m.remaining < self.value
        if name == "breached":
            return m.breached is self.value
        return m.status in self.value  # status

    def _ready(self, s: Subject, m: MetricFacts) -> datetime | None:
        """When a failing test will hold if the clock keeps running (calendar time only)."""
        if not m.running:
            return None
        now = s.facts.now
        if self.test_name == "breached" and self.value and m.due_at is not None:
            return m.due_at
        if m.business or m.target is None:
            return None
        if self.test_name == "elapsed_over":
            pct: float = self.value
            return now + (m.target * (pct / 100) - m.elapsed)
        if self.test_name == "remaining_under" and m.remaining is not None:
            limit: timedelta = self.value
            return now + (m.remaining - limit)
        return None

    def explain(self, s: Subject) -> Outcome:
        m = self._m(s)
        name, metric = self.test_name, self.metric
        if m is None:
            return Outcome(self.path, self.key, False, f"{metric}: no SLA clock on this link")
        passed = self._check(m)
        if name in ("elapsed_over", "elapsed_under"):
            need = ("at least " if name == "elapsed_over" else "under ") + f"{self.value:g}%"
            if m.elapsed_fraction is None:
                reason = f"{metric} has no target, needs elapsed {need}"
            else:
                reason = f"{metric} elapsed {_pct(m.elapsed_fraction)}" + (
                    f" ({need})" if passed else f", needs {need}"
                )
        elif name == "remaining_under":
            need = f"under {format_duration(self.value)}"
            if m.remaining is None:
                reason = f"{metric} has no target, needs remaining {need}"
            else:
                reason = f"{metric} remaining {format_duration(m.remaining)}" + (
                    f" ({need})" if passed else f", needs {need}"
                )
        elif name == "breached":
            state = "breached" if m.breached else "not breached"
            want = "breached" if self.value else "not breached"
            reason = f"{metric} is {state}" + ("" if passed else f", needs {want}")
        else:
            reason = f"{metric} clock is {m.status}" + (
                f" (one of {_show(sorted(self.value))})"
                if passed
                else f", needs one of {_show(sorted(self.value))}"
            )
        ready = None if passed else self._ready(s, m)
        return Outcome(self.path, self.key, passed, reason, ready_at=ready)


class _All(_Node):
    __slots__ = ("children",)

    def __init__(self, path: str, key: str, children: Sequence[_Node]) -> None:
        super().__init__(path, key)
        self.children = tuple(children)

    def test(self, s: Subject) -> bool:
        for child in self.children:  # noqa: SIM110 - a plain loop is the fastest here (hot path)
            if not child.test(s):
                return False
        return True

    def turns_at(self, s: Subject) -> datetime | None:
        return _earliest([c.turns_at(s) for c in self.children])

    def explain(self, s: Subject) -> Outcome:
        outs = tuple(c.explain(s) for c in self.children)
        passed = all(o.passed for o in outs)
        failing = [o for o in outs if not o.passed]
        ready = None
        if failing and all(o.ready_at is not None for o in failing):
            ready = max(o.ready_at for o in failing if o.ready_at is not None)
        n = len(outs)
        if not outs:
            reason = "no conditions (always holds)"
        elif passed:
            reason = f"all {n} conditions hold" if n > 1 else "the condition holds"
        else:
            reason = f"{len(failing)} of {n} conditions fail"
        return Outcome(self.path, self.key, passed, reason, outs, ready)


class _Any(_Node):
    __slots__ = ("children",)

    def __init__(self, path: str, children: Sequence[_Node]) -> None:
        super().__init__(path, "any")
        self.children = tuple(children)

    def test(self, s: Subject) -> bool:
        for child in self.children:  # noqa: SIM110 - a plain loop is the fastest here (hot path)
            if child.test(s):
                return True
        return False

    def turns_at(self, s: Subject) -> datetime | None:
        return _earliest([c.turns_at(s) for c in self.children])

    def explain(self, s: Subject) -> Outcome:
        outs = tuple(c.explain(s) for c in self.children)
        held = sum(1 for o in outs if o.passed)
        passed = held > 0
        readies = [o.ready_at for o in outs if o.ready_at is not None]
        ready = None if passed or not readies else min(readies)
        reason = f"any: {held} of {len(outs)} hold" if passed else f"any: none of {len(outs)} holds"
        return Outcome(self.path, self.key, passed, reason, outs, ready)


class _Not(_Node):
    __slots__ = ("child",)

    def __init__(self, path: str, child: _Node) -> None:
        super().__init__(path, "not")
        self.child = child

    def test(self, s: Subject) -> bool:
        return not self.child.test(s)

    def turns_at(self, s: Subject) -> datetime | None:
        return self.child.turns_at(s)

    def explain(self, s: Subject) -> Outcome:
        inner = self.child.explain(s)
        passed = not inner.passed
        reason = "not: the inner conditions " + ("fail" if passed else "hold, so this fails")
        return Outcome(self.path, self.key, passed, reason, (inner,))


# -- compiling -------------------------------------------------------------------------------

_STRING_GETTERS: dict[str, tuple[str, Callable[[Subject], str | None]]] = {
    "priority": ("priority", lambda s: s.facts.psa.priority),
    "queue": ("queue", lambda s: s.facts.psa.queue),
    "type": ("type", lambda s: s.facts.psa.type),
    "company": ("company", lambda s: s.facts.psa.company),
    "tier": ("tier", lambda s: s.tier),
    "psa_status": ("PSA status", lambda s: s.facts.psa.status),
    "psa_class": ("PSA status class", lambda s: s.facts.psa.status_class),
    "subtype": ("subtype", lambda s: s.facts.psa.subtype),
    "assignee": ("assignee", lambda s: s.facts.psa.assignee),
    "group": ("group", lambda s: s.facts.psa.group),
    "connection": ("connection", lambda s: s.facts.link.connection),
    "vendor": ("vendor system", lambda s: s.facts.link.vendor_system),
    "vendor_status": ("vendor status", lambda s: s.facts.link.vendor_status),
    "vendor_class": ("vendor status class", lambda s: s.facts.link.vendor_class),
    "vendor_priority": ("vendor priority", lambda s: s.facts.link.vendor_priority),
}

_FLAG_GETTERS: dict[str, tuple[str, Callable[[Subject], bool | None]]] = {
    "escalated": ("escalated", lambda s: s.escalated),
    "breached": ("supplier SLA breached", lambda s: s.facts.breached),
    "closed": ("PSA ticket closed", lambda s: s.facts.psa.closed),
    "resolved": ("vendor resolved", lambda s: s.facts.link.resolved),
    "acknowledged": ("vendor acknowledged", lambda s: s.facts.acknowledged),
    "vendor_linked": ("vendor ticket linked", lambda s: s.facts.link.vendor_linked),
    "vendor_escalation_api": (
        "vendor has an escalation API",
        lambda s: s.facts.link.vendor_escalation_api,
    ),
    "business_hours": ("within business hours", lambda s: s.facts.business_hours),
}

_SLA_TESTS = ("elapsed_over", "elapsed_under", "remaining_under", "breached", "status")


def _sla_nodes(path: str, cond: SlaCondition) -> list[_Node]:
    out: list[_Node] = []
    for name in _SLA_TESTS:
        value = getattr(cond, name)
        if value is None:
            continue
        if name == "status":
            value = frozenset(value)
        out.append(_SlaTest(f"{path}.{name}", cond.metric, name, value))
    return out


def _nodes(when: When, path: str) -> list[_Node]:
    out: list[_Node] = []
    for key, (label, getter) in _STRING_GETTERS.items():
        attr = "type_" if key == "type" else key
        values = getattr(when, attr)
        if values is not None:
            shown = tuple(str(v) for v in values)  # status classes by their names
            out.append(_OneOf(f"{path}.{key}", key, label, getter, shown))
    if when.ball is not None:
        out.append(_BallIs(f"{path}.ball", when.ball))
    if when.age_over is not None:
        out.append(_Age(f"{path}.age_over", "age_over", when.age_over, over=True))
    if when.age_under is not None:
        out.append(_Age(f"{path}.age_under", "age_under", when.age_under, over=False))
    if when.vendor_silent_for is not None:
        out.append(_Silent(f"{path}.vendor_silent_for", when.vendor_silent_for))
    if when.escalation_level_below is not None:
        out.append(
            _Level(
                f"{path}.escalation_level_below",
                "escalation_level_below",
                when.escalation_level_below,
                below=True,
            )
        )
    if when.escalation_level_at_least is not None:
        out.append(
            _Level(
                f"{path}.escalation_level_at_least",
                "escalation_level_at_least",
                when.escalation_level_at_least,
                below=False,
            )
        )
    for key, (label, flag_getter) in _FLAG_GETTERS.items():
        wanted = getattr(when, key)
        if wanted is not None:
            out.append(_Flag(f"{path}.{key}", key, label, flag_getter, wanted))
    if when.sla is not None:
        out.extend(_sla_nodes(f"{path}.sla", when.sla))
    if when.all_ is not None:
        out.append(
            _All(
                f"{path}.all",
                "all",
                [_group(w, f"{path}.all[{i}]") for i, w in enumerate(when.all_)],
            )
        )
    if when.any_ is not None:
        out.append(
            _Any(f"{path}.any", [_group(w, f"{path}.any[{i}]") for i, w in enumerate(when.any_)])
        )
    if when.not_ is not None:
        out.append(_Not(f"{path}.not", _group(when.not_, f"{path}.not")))
    return out


def _group(when: When, path: str) -> _Node:
    nodes = _nodes(when, path)
    if len(nodes) == 1:
        return nodes[0]
    return _All(path, "all", nodes)


class CompiledCondition:
    """A rule's conditions, ready to test.

    ``index_priorities`` / ``index_queues`` are set when the top level requires
    the PSA priority / queue to be one of a few values (normalised): the engine
    uses them to skip the rule for other tickets without testing anything.
    """

    __slots__ = ("always", "index_priorities", "index_queues", "root")

    def __init__(self, when: When, path: str = "when") -> None:
        self.root: _Node = _All(path, "when", _nodes(when, path))
        self.always = not self.root.children if isinstance(self.root, _All) else False
        self.index_priorities: frozenset[str] | None = (
            frozenset(norm(p) for p in when.priority) if when.priority is not None else None
        )
        self.index_queues: frozenset[str] | None = (
            frozenset(norm(b) for b in when.queue) if when.queue is not None else None
        )

    def test(self, subject: Subject) -> bool:
        return self.root.test(subject)

    def explain(self, subject: Subject) -> Outcome:
        return self.root.explain(subject)

    def turns_at(self, subject: Subject) -> datetime | None:
        """The earliest instant after ``now`` the conditions may change by time alone."""
        return self.root.turns_at(subject)


def compile_when(when: When, path: str = "when") -> CompiledCondition:
    """Compile validated conditions; ``path`` prefixes each leaf's path in explanations."""
    return CompiledCondition(when, path)


@functools.lru_cache(maxsize=1024)
def _compile_cached(canonical: str, path: str) -> CompiledCondition:
    return CompiledCondition(When.model_validate(json.loads(canonical)), path)


def compile_when_data(data: Mapping[str, Any] | None, path: str = "when") -> CompiledCondition:
    """Compile conditions stored as data (a chain snapshot's); cached by content."""
    canonical = json.dumps(dict(data or {}), sort_keys=True, separators=(",", ":"))
    return _compile_cached(canonical, path)
