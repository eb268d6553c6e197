"""Loading rule files into a :class:`RuleSet`, reporting every problem with its YAML path.

:func:`load_rules` reads every ``*.yaml`` file of a directory in name order
(``00-tiers.yaml`` before ``10-tiered.yaml``), validates each file's shape
(:mod:`ticketbridge.rules.models`), then checks what a schema cannot:

* rule names are unique across files; tiers are defined in one file only;
  a contact (person, or vendor role) is defined once;
* every tier, person, vendor role and calendar a rule refers to exists, and a
  person has an address for the channel a ``notify`` uses;
* every template compiles in the sandbox and uses only known variables;
* waits make sense: ``every`` at least a minute (five for a client-update
  cadence), ``after`` at most 30 days, a window's hours do not overlap;
* conditions can hold (``age_over`` below ``age_under``, a level bound above 0).

Problems are ``(path, message, hint)`` with paths like
``config/rules/critical.yaml: rules[2].chain[1].only_between``.  Rules with a
problem are left out of the returned rule set (a file whose shape is wrong
contributes none); a caller that finds any problem should refuse to run
(``check-config`` lists them all).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from ticketbridge.errors import ConfigError
from ticketbridge.rules.actions import check_template
from ticketbridge.rules.chains import ChainSnapshot, Window, WindowResolver, window_resolver
from ticketbridge.rules.conditions import CompiledCondition, compile_when, norm
from ticketbridge.rules.models import (
    TEMPLATE_FIELDS,
    ClientUpdateAction,
    Contacts,
    Directory,
    EmailVendorAction,
    MovePsaTicketAction,
    NotifyAction,
    PersonContact,
    Problem,
    RuleModel,
    RulesFile,
    TierModel,
    When,
    format_duration,
    parse_rules_file,
)
from ticketbridge.sla.calendar import BusinessCalendar

__all__ = [
    "CompiledRule",
    "RuleSet",
    "load_rules",
    "load_rules_or_raise",
    "rules_from_data",
]

MIN_EVERY = timedelta(minutes=1)
MIN_CADENCE = timedelta(minutes=5)
MAX_AFTER = timedelta(days=30)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A validated rule with its conditions compiled and its current chain snapshot."""

    model: RuleModel
    source: str
    timezone: str
    condition: CompiledCondition
    snapshot: ChainSnapshot

    @property
    def name(self) -> str:
        return self.model.name


@dataclass(frozen=True)
class RuleSet:
    """Every enabled rule, in file-name then file order, with tiers, contacts and calendars."""

    rules: tuple[CompiledRule, ...] = ()
    directory: Directory = field(default_factory=Directory)
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    _by_name: dict[str, CompiledRule] = field(init=False, repr=False, compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _candidates: dict[tuple[str | None, str | None], tuple[int, ...]] = field(
        init=False, repr=False, compare=False
    )
    _resolve: WindowResolver = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_by_name", {r.name: r for r in self.rules})
        set_(self, "_index", {r.name: i for i, r in enumerate(self.rules)})
        set_(self, "_candidates", {})
        set_(self, "_resolve", window_resolver(self.calendars))

    def rule(self, name: str) -> CompiledRule | None:
        return self._by_name.get(name)

    def index_of(self, name: str) -> int | None:
        return self._index.get(name)

    def candidates(self, priority: str | None, queue: str | None = None) -> tuple[int, ...]:
        """Indexes of the rules whose conditions may hold for a ticket of this priority and
        queue (rules requiring another priority or queue are left out), in rule order."""
        key = (
            None if priority is None else norm(priority),
            None if queue is None else norm(queue),
        )
        found = self._candidates.get(key)
        if found is None:
            p, b = key
            found = tuple(
                i
                for i, rule in enumerate(self.rules)
                if (rule.condition.index_priorities is None or p in rule.condition.index_priorities)
                and (rule.condition.index_queues is None or b in rule.condition.index_queues)
            )
            if len(self._candidates) < 4096:
                self._candidates[key] = found
        return found

    @property
    def resolve(self) -> WindowResolver:
        """Window look-up for hours windows and this rule set's calendars."""
        return self._resolve

    def tier_of(self, queue: str | None, group: str | None, assignee: str | None) -> str | None:
        return self.directory.tier_for(queue, group, assignee)


# -- loading -----------------------------------------------------------------------------------------


def _read(path: Path, label: str) -> tuple[Any, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [(label, f"cannot read: {exc.strerror}", "check the path and permissions")]
    try:
        return yaml.safe_load(text), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, [(label, f"not valid YAML{where}", "fix the YAML syntax")]


def load_rules(
    directory: Path | str,
    *,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[RuleSet, list[Problem]]:
    """Read ``directory/*.yaml`` in name order: the rule set and every problem found.

    ``calendars`` are the business calendars rules may name in
    ``only_between: {calendar: ...}`` (the ``sla.calendars`` of the main config).
    ``aliases`` are products' own words for ticket fields (e.g. a PSA's word for
    its queue), accepted wherever the neutral word goes.
    """
    root = Path(directory)
    if not root.is_dir():
        return RuleSet(calendars=dict(calendars or {})), [
            (str(root), "rules directory not found", "create it or fix the path")
        ]
    files: dict[str, Any] = {}
    problems: list[Problem] = []
    for path in sorted(root.glob("*.yaml")):
        data, read_problems = _read(path, str(path))
        problems.extend(read_problems)
        if not read_problems:
            files[str(path)] = data
    ruleset, more = rules_from_data(files, calendars=calendars, aliases=aliases)
    return ruleset, problems + more


def load_rules_or_raise(
    directory: Path | str,
    *,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> RuleSet:
    """:func:`load_rules`, raising :class:`~ticketbridge.errors.ConfigError` on any problem."""
    ruleset, problems = load_rules(directory, calendars=calendars, aliases=aliases)
    if problems:
        raise ConfigError(problems)
    return ruleset


def rules_from_data(
    files: Mapping[str, Any],
    *,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[RuleSet, list[Problem]]:
    """Like :func:`load_rules` for already parsed files: ``{source name: YAML data}``, in order."""
    problems: list[Problem] = []
    parsed: list[tuple[str, RulesFile]] = []
    for source, data in files.items():
        model, file_problems = parse_rules_file(data, f"{source}: ", aliases)
        problems.extend(file_problems)
        if model is not None:
            parsed.append((source, model))

    tiers, tier_problems = _merge_tiers(parsed)
    contacts, contact_problems = _merge_contacts(parsed)
    problems.extend(tier_problems + contact_problems)
    directory = Directory(tiers=tiers, contacts=contacts)
    known_calendars = dict(calendars or {})
    checker = _Checker(directory, known_calendars)

    compiled: list[CompiledRule] = []
    first_seen: dict[str, str] = {}
    for source, model in parsed:
        for i, rule in enumerate(model.rules):
            where = f"{source}: rules[{i}]"
            rule_problems: list[Problem] = []
            if rule.name in first_seen:
                rule_problems.append(
                    (
                        f"{where}.name",
                        f"rule name {rule.name!r} is already used by {first_seen[rule.name]}",
                        "give every rule its own name (across all rule files)",
                    )
                )
            else:
                first_seen[rule.name] = where
            rule_problems.extend(checker.rule(rule, where, model.timezone))
            problems.extend(rule_problems)
            if rule_problems or not rule.enabled:
                continue
            snapshot = ChainSnapshot.from_rule(rule, source=where, timezone=model.timezone)
            compiled.append(
                CompiledRule(
                    model=rule,
                    source=where,
                    timezone=model.timezone,
                    condition=compile_when(rule.when),
                    snapshot=snapshot,
                )
            )
    ruleset = RuleSet(
        rules=tuple(compiled),
        directory=directory,
        calendars=known_calendars,
        files=tuple(files),
    )
    return ruleset, problems


def _merge_tiers(
    parsed: Sequence[tuple[str, RulesFile]],
) -> tuple[tuple[TierModel, ...], list[Problem]]:
    problems: list[Problem] = []
    tiers: tuple[TierModel, ...] = ()
    owner: str | None = None
    for source, model in parsed:
        if not model.tiers:
            continue
        if owner is not None:
            problems.append(
                (
                    f"{source}: tiers",
                    f"tiers are already defined in {owner}",
                    "define the tier ladder in one file only",
                )
            )
            continue
        owner, tiers = source, model.tiers
        seen: dict[str, int] = {}
        for i, tier in enumerate(model.tiers):
            key = tier.name.casefold()
            if key == "next":
                problems.append(
                    (f"{source}: tiers[{i}].name", "'next' is reserved", "name the tier otherwise")
                )
            if key in seen:
                problems.append(
                    (
                        f"{source}: tiers[{i}].name",
                        f"tier {tier.name!r} is already tiers[{seen[key]}]",
                        "give every tier its own name",
                    )
                )
            seen.setdefault(key, i)
    return tiers, problems


def _merge_contacts(parsed: Sequence[tuple[str, RulesFile]]) -> tuple[Contacts, list[Problem]]:
    problems: list[Problem] = []
    vendors: dict[str, dict[str, tuple[str, ...]]] = {}
    people: dict[str, PersonContact] = {}
    where: dict[str, str] = {}
    for source, model in parsed:
        for system, roles in model.contacts.vendors.items():
            merged = vendors.setdefault(system, {})
            for role, addresses in roles.items():
                key = f"vendors.{system}.{role}"
                if role in merged:
                    problems.append(
                        (
                            f"{source}: contacts.{key}",
                            f"already defined in {where[key]}",
                            "define each contact once",
                        )
                    )
                    continue
                merged[role] = tuple(addresses)
                where[key] = source
        for name, person in model.contacts.people.items():
            key = f"people.{name}"
            if name in people:
                problems.append(
                    (
                        f"{source}: contacts.{key}",
                        f"already defined in {where[key]}",
                        "define each contact once",
                    )
                )
                continue
            people[name] = person
            where[key] = source
    return Contacts(vendors=vendors, people=people), problems


def _conditions(when: When, path: str) -> Iterator[tuple[When, str]]:
    yield when, path
    for key, children in (("all", when.all_), ("any", when.any_)):
        for i, child in enumerate(children or ()):
            yield from _conditions(child, f"{path}.{key}[{i}]")
    if when.not_ is not None:
        yield from _conditions(when.not_, f"{path}.not")


class _Checker:
    """Cross-reference and sanity checks of one rule."""

    def __init__(self, directory: Directory, calendars: Mapping[str, BusinessCalendar]) -> None:
        self.directory = directory
        self.calendars = calendars
        self.tier_names = ", ".join(t.name for t in directory.tiers) or "(none defined)"

    def rule(self, rule: RuleModel, where: str, timezone: str) -> list[Problem]:
        out = self.when(rule.when, f"{where}.when")
        single = rule.chain is None
        for i, step in enumerate(rule.steps):
            spath = f"{where}.actions" if single else f"{where}.chain[{i}]"
            if step.after > MAX_AFTER:
                out.append(
                    (
                        f"{spath}.after",
                        f"a wait of {format_duration(step.after)} is longer than 30 days",
                        "escalations wait minutes or hours; check the unit",
                    )
                )
            if step.every is not None and step.every < MIN_EVERY:
                out.append(
                    (
                        f"{spath}.every",
                        f"every {format_duration(step.every)} is more often than once a minute",
                        "repeat at most once a minute",
                    )
                )
            if step.only_between is not None:
                out.extend(self.window(step.only_between, f"{spath}.only_between", timezone))
            if step.when is not None:
                out.extend(self.when(step.when, f"{spath}.when"))
            apath = f"{where}.actions" if single else f"{spath}.actions"
            for k, action in enumerate(step.actions):
                out.extend(self.action(action, f"{apath}[{k}]"))
        return out

    def window(self, model: Any, path: str, timezone: str) -> list[Problem]:
        window = Window.from_model(model, timezone)
        if window.calendar is not None:
            if window.calendar not in self.calendars:
                known = ", ".join(sorted(self.calendars)) or "(none given)"
                return [
                    (
                        f"{path}.calendar",
                        f"unknown calendar {window.calendar!r}",
                        f"define it under sla.calendars; known: {known}",
                    )
                ]
            return []
        try:
            window_resolver()(window)
        except ValueError as exc:
            return [(f"{path}.hours", str(exc), "make the intervals not overlap")]
        return []

    def when(self, when: When, path: str) -> list[Problem]:
        out: list[Problem] = []
        for cond, cpath in _conditions(when, path):
            if cond.tier is not None:
                for value in cond.tier:
                    if self.directory.tier_index(value) is None:
                        out.append(
                            (
                                f"{cpath}.tier",
                                f"unknown tier {value!r}",
                                f"defined tiers: {self.tier_names}",
                            )
                        )
            if (
                cond.age_over is not None
                and cond.age_under is not None
                and cond.age_over >= cond.age_under
            ):
                out.append(
                    (
                        f"{cpath}.age_under",
                        (
                            f"age_over {format_duration(cond.age_over)} and age_under "
                            f"{format_duration(cond.age_under)} can never both hold"
                        ),
                        "age_under must be longer than age_over",
                    )
                )
            if cond.escalation_level_below == 0:
                out.append(
                    (
                        f"{cpath}.escalation_level_below",
                        "no escalation level is below 0",
                        "levels start at 0; use escalation_level_below: 1 for 'not escalated'",
                    )
                )
            sla = cond.sla
            if (
                sla is not None
                and sla.elapsed_over is not None
                and sla.elapsed_under is not None
                and sla.elapsed_over >= sla.elapsed_under
            ):
                out.append(
                    (
                        f"{cpath}.sla.elapsed_under",
                        "elapsed_over and elapsed_under can never both hold",
                        "elapsed_under must be above elapsed_over",
                    )
                )
        return out

    def action(self, action: Any, path: str) -> list[Problem]:
        out: list[Problem] = []
        for name in TEMPLATE_FIELDS[action.type]:
            text = getattr(action, name)
            if text is None:
                continue
            for message, hint in check_template(text):
                out.append((f"{path}.{name}", message, hint))
        if isinstance(action, MovePsaTicketAction) and action.to_tier is not None:
            if action.to_tier.casefold() == "next":
                if not self.directory.tiers:
                    out.append(
                        (
                            f"{path}.to_tier",
                            "to_tier: next needs tiers",
                            "define tiers: in a rule file",
                        )
                    )
            elif self.directory.tier_index(action.to_tier) is None:
                out.append(
                    (
                        f"{path}.to_tier",
                        f"unknown tier {action.to_tier!r}",
                        f"defined tiers: {self.tier_names}, or 'next'",
                    )
                )
        elif isinstance(action, NotifyAction):
            people = self.directory.contacts.people
            for j, name in enumerate(action.to):
                person = people.get(name)
                if person is None:
                    if action.channel == "email" and "@" in name:
                        continue
                    known = ", ".join(sorted(people)) or "(none defined)"
                    out.append(
                        (
                            f"{path}.to" + (f"[{j}]" if len(action.to) > 1 else ""),
                            f"unknown contact {name!r}",
                            f"define it under contacts.people; known: {known}",
                        )
                    )
                elif not person.target(action.channel):
                    out.append(
                        (
                            f"{path}.channel",
                            f"{name!r} has no {action.channel} address",
                            f"add contacts.people.{name}.{action.channel}",
                        )
                    )
        elif isinstance(action, EmailVendorAction):
            roles = {role for r in self.directory.contacts.vendors.values() for role in r}
            for j, name in enumerate(action.to):
                if "@" not in name and name not in roles:
                    out.append(
                        (
                            f"{path}.to" + (f"[{j}]" if len(action.to) > 1 else ""),
                            f"no vendor has a contact role {name!r}",
                            (
                                "add it under contacts.vendors.<vendor system>, or give an "
                                f"address; known roles: {', '.join(sorted(roles)) or '(none)'}"
                            ),
                        )
                    )
        elif (
            isinstance(action, ClientUpdateAction)
            and action.every is not None
            and action.every < MIN_CADENCE
        ):
            out.append(
                (
                    f"{path}.every",
                    f"a client update every {format_duration(action.every)} floods the ticket",
                    "post at most every 5 minutes (60m is usual for priority 1)",
                )
            )
        return out
