"""Names are checked: every queue, status, priority, group, assignee, field and account that
configuration and rules write must exist in the product they are written for.

A typo in a routed queue or a status map passes every offline check and then silently
routes nothing.  ``ticketbridge check-config --online`` (and the daemon at start) logs in
to each system and asks its adapter which of the names exist
(:meth:`~ticketbridge.adapters.base.TicketAdapter.lookup_names`); what does not exist
is reported with its configuration path and the closest existing name.

Product-neutral: this module collects the names per system and kind from configuration
and rules; each adapter answers with its own product's API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from ticketbridge.adapters.base import NameKind, NameLookup, TicketAdapter
from ticketbridge.config import Problem, TicketBridgeConfig

__all__ = ["NameReport", "WantedNames", "check_names", "collect_names", "online_check"]


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class WantedNames:
    """system -> kind -> name -> the configuration paths that write it."""

    by_system: dict[str, dict[NameKind, dict[str, list[str]]]] = field(default_factory=dict)

    def add(self, system: str, kind: NameKind, name: str | None, where: str) -> None:
        if system is None or name is None or not str(name).strip():
            return
        spots = self.by_system.setdefault(system, {}).setdefault(kind, {}).setdefault(name, [])
        if where not in spots:
            spots.append(where)

    def add_all(self, system: str, kind: NameKind, names: Iterable[str] | None, where: str) -> None:
        for name in names or ():
            self.add(system, kind, name, where)

    def kinds(self, system: str) -> dict[NameKind, frozenset[str]]:
        return {k: frozenset(v) for k, v in self.by_system.get(system, {}).items()}


@dataclass
class NameReport:
    """What the online check found: problems (path, message, hint) and notes."""

    problems: list[Problem] = field(default_factory=list)
    #: Kinds a product did not check, and systems that were not reached, for information.
    notes: list[str] = field(default_factory=list)


def collect_names(config: TicketBridgeConfig, ruleset: Any | None = None) -> WantedNames:
    """Every name the configuration and ``ruleset`` write, per system and kind."""
    wanted = WantedNames()
    for i, conn in enumerate(config.connections):
        path, psa, vendor = f"connections[{i}]", conn.psa, conn.vendor
        routing = conn.routing
        for j, queue in enumerate(routing.queues):
            wanted.add(psa, NameKind.QUEUE, queue, f"{path}.routing.queues[{j}]")
        for j, queue in enumerate(routing.watch_queues):
            wanted.add(psa, NameKind.QUEUE, queue, f"{path}.routing.watch_queues[{j}]")
        for j, status in enumerate(routing.statuses):
            wanted.add(psa, NameKind.STATUS, status, f"{path}.routing.statuses[{j}]")
        for j, priority in enumerate(routing.priorities):
            wanted.add(psa, NameKind.PRIORITY, priority, f"{path}.routing.priorities[{j}]")
        for kind, mapping in (
            (NameKind.STATUS, conn.status_map),
            (NameKind.PRIORITY, conn.priority_map),
        ):
            section = f"{path}.{kind.value}_map"
            for vendor_name, psa_name in mapping.vendor_to_psa.items():
                where = f"{section}.vendor_to_psa.{vendor_name}"
                wanted.add(vendor, kind, vendor_name, where)
                wanted.add(psa, kind, psa_name, where)
            for psa_key, vendor_value in mapping.psa_to_vendor.items():
                where = f"{section}.psa_to_vendor.{psa_key}"
                wanted.add(psa, kind, psa_key, where)
                wanted.add(vendor, kind, vendor_value, where)
        for company, fields in conn.accounts.items():
            wanted.add(psa, NameKind.ACCOUNT, company, f"{path}.accounts.{company}")
            for name in fields:
                wanted.add(vendor, NameKind.FIELD, name, f"{path}.accounts.{company}.{name}")
        for name in conn.default_account or {}:
            wanted.add(vendor, NameKind.FIELD, name, f"{path}.default_account.{name}")
        wanted.add(
            psa, NameKind.STATUS, conn.sla.breach_psa_status, f"{path}.sla.breach_psa_status"
        )
        for name in conn.sla.breach_psa_fields:
            wanted.add(psa, NameKind.FIELD, name, f"{path}.sla.breach_psa_fields.{name}")
    if ruleset is not None:
        _collect_rules(config, ruleset, wanted)
    return wanted


#: Condition keys naming something at the PSA or at the vendor.
_PSA_CONDITIONS = (
    ("priority", NameKind.PRIORITY),
    ("queue", NameKind.QUEUE),
    ("psa_status", NameKind.STATUS),
    ("group", NameKind.GROUP),
    ("assignee", NameKind.ASSIGNEE),
    ("company", NameKind.ACCOUNT),
)
_VENDOR_CONDITIONS = (
    ("vendor_status", NameKind.STATUS),
    ("vendor_priority", NameKind.PRIORITY),
)


def _conditions(when: Any, path: str) -> Iterator[tuple[Any, str]]:
    yield when, path
    for key, children in (("all", when.all_), ("any", when.any_)):
        for i, child in enumerate(children or ()):
            yield from _conditions(child, f"{path}.{key}[{i}]")
    if when.not_ is not None:
        yield from _conditions(when.not_, f"{path}.not")


def _collect_rules(config: TicketBridgeConfig, ruleset: Any, wanted: WantedNames) -> None:
    every_psa = sorted({c.psa for c in config.connections})
    for t, tier in enumerate(ruleset.directory.tiers):
        where = f"rules: tiers[{t}] ({tier.name})"
        for system in every_psa:
            wanted.add(system, NameKind.QUEUE, tier.queue, f"{where}.queue")
            wanted.add(system, NameKind.GROUP, tier.group, f"{where}.group")
            wanted.add(system, NameKind.ASSIGNEE, tier.assignee, f"{where}.assignee")
            wanted.add(system, NameKind.STATUS, tier.status, f"{where}.status")
    for rule in ruleset.rules:
        model = rule.model
        top = model.when
        connections = [
            c
            for c in config.connections
            if (top.connection is None or c.name in top.connection)
            and (top.vendor is None or c.vendor in top.vendor)
        ]
        psas = sorted({c.psa for c in connections})
        vendors = sorted({c.vendor for c in connections})
        whens = [(model.when, f"{rule.source}.when")]
        for s, step in enumerate(model.steps):
            if step.when is not None:
                whens.append((step.when, f"{rule.source}.chain[{s}].when"))
        for when, wpath in whens:
            for cond, cpath in _conditions(when, wpath):
                for key, kind in _PSA_CONDITIONS:
                    for system in psas:
                        wanted.add_all(system, kind, getattr(cond, key), f"{cpath}.{key}")
                for key, kind in _VENDOR_CONDITIONS:
                    for system in vendors:
                        wanted.add_all(system, kind, getattr(cond, key), f"{cpath}.{key}")
        for s, step in enumerate(model.steps):
            for a, action in enumerate(step.actions):
                spot = rule.source + (
                    f".actions[{a}]" if model.chain is None else f".chain[{s}].actions[{a}]"
                )
                if action.type == "move_psa_ticket":
                    for system in psas:
                        wanted.add(system, NameKind.QUEUE, action.queue, f"{spot}.queue")
                        wanted.add(system, NameKind.STATUS, action.status, f"{spot}.status")
                        wanted.add(system, NameKind.GROUP, action.group, f"{spot}.group")
                        wanted.add(system, NameKind.ASSIGNEE, action.assignee, f"{spot}.assignee")
                elif action.type == "set_vendor_priority":
                    for system in vendors:
                        wanted.add(system, NameKind.PRIORITY, action.priority, f"{spot}.priority")
                elif action.type == "set_vendor_field":
                    for system in vendors:
                        wanted.add(system, NameKind.FIELD, action.field, f"{spot}.field")


def _missing(
    system: str,
    kind: NameKind,
    names: Mapping[str, list[str]],
    lookup: NameLookup,
    product: str,
) -> list[Problem]:
    known = {_fold(k): k for k in lookup.known}
    out: list[Problem] = []
    for name, spots in sorted(names.items()):
        if _fold(name) in known:
            continue
        close = get_close_matches(_fold(name), list(known), n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {known[close[0]]!r}?"
        elif lookup.known:
            sample = sorted(lookup.known)[:12]
            hint = "existing: " + ", ".join(sample) + (" ..." if len(lookup.known) > 12 else "")
        else:
            hint = f"{product} has no {kind.value} at all here; check the system's setup"
        for spot in spots:
            out.append(
                (spot, f"{system} ({product}) has no {kind.value} {name!r}", hint),
            )
    return out


async def _check_system(
    name: str, adapter: TicketAdapter, wanted: Mapping[NameKind, frozenset[str]]
) -> tuple[list[Problem], list[str], Mapping[NameKind, NameLookup]]:
    problems: list[Problem] = []
    notes: list[str] = []
    product = adapter.display_name
    try:
        await adapter.check()
    except Exception as exc:  # noqa: BLE001 - every failure to log in is reported the same way
        problems.append(
            (
                f"systems.{name}",
                f"cannot log in to {name} ({product}): {exc}",
                "check base_url and the credentials under settings",
            )
        )
        return problems, notes, {}
    if not wanted:
        return problems, notes, {}
    try:
        answers = await adapter.lookup_names(wanted)
    except Exception as exc:  # noqa: BLE001 - a broken look-up is reported, not raised
        problems.append(
            (
                f"systems.{name}",
                f"cannot read names from {name} ({product}): {exc}",
                "check the integration user's rights",
            )
        )
        return problems, notes, {}
    for kind in sorted(wanted, key=lambda k: k.value):
        answer = answers.get(kind)
        if answer is None:
            notes.append(f"{name} ({product}): {kind.value} names not checked")
        elif answer.error is not None:
            problems.append(
                (
                    f"systems.{name}",
                    f"cannot check {kind.value} names at {name} ({product}): {answer.error}",
                    "give the integration user read access to them, or check them by hand",
                )
            )
    return problems, notes, answers


async def check_names(
    config: TicketBridgeConfig,
    adapters: Mapping[str, TicketAdapter],
    ruleset: Any | None = None,
) -> NameReport:
    """Log in to every system and report each configured name that does not exist there."""
    if ruleset is None and config.rules.directory is not None:
        from ticketbridge.adapters import field_aliases
        from ticketbridge.rules.loader import load_rules

        ruleset, _ = load_rules(
            config.rules.directory,
            calendars=config.sla.build_calendars(),
            aliases=field_aliases(),
        )
    wanted = collect_names(config, ruleset)
    names = sorted(adapters)
    results = await asyncio.gather(*(_check_system(n, adapters[n], wanted.kinds(n)) for n in names))
    report = NameReport()
    for name, (problems, notes, answers) in zip(names, results, strict=True):
        report.problems.extend(problems)
        report.notes.extend(notes)
        product = adapters[name].display_name
        for kind, by_name in wanted.by_system.get(name, {}).items():
            answer = answers.get(kind)
            if answer is not None and answer.error is None:
                report.problems.extend(_missing(name, kind, by_name, answer, product))
    return report


async def online_check(
    config: TicketBridgeConfig,
    *,
    transports: Mapping[str, Any] | None = None,
) -> NameReport:
    """:func:`check_names` with the configured systems' adapters, closed afterwards."""
    from ticketbridge.wiring import build_adapters

    adapters = build_adapters(config, transports=transports)
    try:
        return await check_names(config, adapters)
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
