"""Builders shared by the rules tests: facts, rule sets from YAML text, JSON round trips."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from ticketbridge.rules import (
    Facts,
    LinkFacts,
    MetricFacts,
    PsaFacts,
    RuleSet,
    SlaFacts,
    rules_from_data,
)
from ticketbridge.sla.calendar import BusinessCalendar

M = timedelta(minutes=1)
H = timedelta(hours=1)
#: Tuesday 2026-03-03 09:00 in New York (EST, UTC-5).
T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)

P1 = "Priority 1 - Emergency Response"
P3 = "Priority 3 - Normal Response"

DIRECTORY = """
tiers:
  - {name: Tier 1, queue: Service Desk}
  - {name: Tier 2, queue: Service Desk, group: Tier 2}
  - {name: Tier 3, queue: Service Desk, group: Tier 3}
  - {name: Vendor, queue: Vendor Escalations, status: New}
contacts:
  vendors:
    snow: {escalation: [esc@vendor.example], account_manager: [am@vendor.example]}
  people:
    desk: {email: desk@msp.example, teams: {env: TEAMS_URL}}
    boss: {email: [boss@msp.example, deputy@msp.example], slack: "https://hooks.slack.example/x"}
    noc: {webhook: {env: NOC_URL}}
"""


def ruleset(
    rules_yaml: str,
    *,
    directory: str = DIRECTORY,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    timezone: str = "UTC",
) -> RuleSet:
    """A rule set from a ``rules:`` YAML snippet plus the shared directory; fails on problems."""
    files = {
        "00-dir.yaml": yaml.safe_load(textwrap.dedent(directory)),
        "10-rules.yaml": {
            "timezone": timezone,
            **yaml.safe_load(textwrap.dedent(rules_yaml)),
        },
    }
    rs, problems = rules_from_data(files, calendars=calendars)
    assert problems == [], problems
    return rs


def problems_of(
    rules_yaml: str, *, directory: str = DIRECTORY, **kw: Any
) -> list[tuple[str, str, str]]:
    files = {
        "00-dir.yaml": yaml.safe_load(textwrap.dedent(directory)),
        "10-rules.yaml": yaml.safe_load(textwrap.dedent(rules_yaml)),
    }
    return rules_from_data(files, **kw)[1]


def metric(
    name: str,
    *,
    status: str = "running",
    fraction: float | None = 0.0,
    target: timedelta | None = 30 * M,
    breached: bool = False,
    due_at: datetime | None = None,
    business: bool = False,
) -> MetricFacts:
    elapsed = (target or timedelta(0)) * (fraction or 0)
    remaining = None if target is None else max(target - elapsed, timedelta(0))
    return MetricFacts(
        metric=name,
        status=status,
        elapsed=elapsed,
        target=target,
        remaining=remaining,
        elapsed_fraction=fraction if target is not None else None,
        breached=breached,
        due_at=due_at,
        business=business,
    )


def sla(**metrics: MetricFacts) -> SlaFacts:
    return SlaFacts(
        acknowledgment=metrics.get("acknowledgment", metric("acknowledgment")),
        update_cadence=metrics.get("update_cadence", metric("update_cadence", status="pending")),
        resolution=metrics.get("resolution", metric("resolution", target=8 * H)),
    )


def facts(
    now: datetime = T0,
    *,
    psa: Mapping[str, Any] | None = None,
    link: Mapping[str, Any] | None = None,
    sla_facts: SlaFacts | None = None,
    business_hours: bool | None = None,
) -> Facts:
    """A P1 vendor ticket at ``now`` unless overridden."""
    psa_fields: dict[str, Any] = {
        "id": "101",
        "number": "101",
        "summary": "Mail server down",
        "priority": P1,
        "queue": "Vendor Escalations",
        "type": "Vendor Incident",
        "company": "ACME",
        "status": "Waiting on Vendor",
        "created_at": T0 - 10 * M,
    }
    psa_fields.update(psa or {})
    link_fields: dict[str, Any] = {
        "link_id": "L1",
        "connection": "cw-snow",
        "vendor_system": "snow",
        "vendor_ticket_id": "abc123",
        "vendor_ticket_number": "INC0010001",
        "vendor_status": "New",
        "vendor_priority": "2",
        "linked_at": T0,
    }
    link_fields.update(link or {})
    return Facts(
        now=now,
        psa=PsaFacts(**psa_fields),
        link=LinkFacts(**link_fields),
        sla=sla_facts,
        business_hours=business_hours,
    )


def with_now(f: Facts, now: datetime) -> Facts:
    return replace(f, now=now)


def roundtrip(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state as the store would give it back: through JSON text."""
    out = json.loads(json.dumps(state))
    assert isinstance(out, dict)
    return out
