"""Escalation rules: the pure core (no I/O, no database, no HTTP).

* :mod:`~ticketbridge.rules.facts` -- :class:`Facts`, the frozen view of one link at one instant.
* :mod:`~ticketbridge.rules.models` -- the YAML schema of ``config/rules/*.yaml``.
* :mod:`~ticketbridge.rules.loader` -- :func:`load_rules`: files -> :class:`RuleSet` + problems.
* :mod:`~ticketbridge.rules.conditions` -- compiled conditions with reasons.
* :mod:`~ticketbridge.rules.chains` -- chain snapshots, progress and the run planner.
* :mod:`~ticketbridge.rules.actions` -- intents and sandboxed Jinja2 templates.
* :mod:`~ticketbridge.rules.engine` -- :func:`evaluate`, :func:`explain`, :func:`simulate`.
"""

from __future__ import annotations

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
)
from ticketbridge.rules.chains import ChainProgress, ChainSnapshot, DueRun, RunKey, plan
from ticketbridge.rules.engine import (
    Evaluation,
    Explanation,
    Simulation,
    escalation_from_state,
    evaluate,
    explain,
    simulate,
)
from ticketbridge.rules.facts import (
    Facts,
    LinkFacts,
    MetricFacts,
    PsaFacts,
    SlaFacts,
    VendorNote,
    business_hours_at,
    sla_facts_from_snapshot,
)
from ticketbridge.rules.loader import RuleSet, load_rules, load_rules_or_raise, rules_from_data

__all__ = [
    "ActionFailed",
    "ActionSkipped",
    "AddNote",
    "ChainProgress",
    "ChainSnapshot",
    "DueRun",
    "Evaluation",
    "Explanation",
    "Facts",
    "Intent",
    "LinkFacts",
    "MetricFacts",
    "MovePsaTicket",
    "Notify",
    "OpenLessonsLearned",
    "PsaFacts",
    "RuleSet",
    "RunKey",
    "SendEmail",
    "SetVendorField",
    "SetVendorPriority",
    "Simulation",
    "SlaFacts",
    "VendorNote",
    "business_hours_at",
    "escalation_from_state",
    "evaluate",
    "explain",
    "load_rules",
    "load_rules_or_raise",
    "plan",
    "rules_from_data",
    "simulate",
    "sla_facts_from_snapshot",
]
