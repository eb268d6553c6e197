"""When time alone may change a condition's answer (``turns_at``): the rules pass skips a
link until then, so the answer must not change before it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ticketbridge.rules.conditions import Subject, compile_when
from ticketbridge.rules.engine import next_turn_at
from ticketbridge.rules.facts import Facts
from ticketbridge.rules.models import When

from .helpers import P3, T0, H, M, facts, metric, ruleset, sla, with_now


def turns(when: dict[str, Any], f: Facts) -> datetime | None:
    return compile_when(When.model_validate(when)).turns_at(Subject(f))


def answer(when: dict[str, Any], f: Facts) -> bool:
    return compile_when(When.model_validate(when)).test(Subject(f))


def aged(f: Facts, by: timedelta) -> Facts:
    """The same link ``by`` later, its SLA clocks having run meanwhile."""
    later = with_now(f, f.now + by)
    if f.sla is None:
        return later
    moved = {}
    for name in ("acknowledgment", "update_cadence", "resolution"):
        m = f.sla.metric(name)
        if m.running and m.target is not None:
            fraction = (m.elapsed + by) / m.target
            moved[name] = metric(name, fraction=fraction, target=m.target, breached=fraction >= 1)
        else:
            moved[name] = m
    return Facts(
        now=later.now, psa=later.psa, link=later.link, sla=sla(**moved), business_hours=None
    )


CASES: list[tuple[dict[str, Any], Facts, timedelta]] = [
    ({"age_over": "1h"}, facts(), 50 * M),  # created 10 minutes before T0
    ({"age_under": "1h"}, facts(), 50 * M),
    ({"vendor_silent_for": "2h"}, facts(), 2 * H),  # linked at T0, no update
    ({"not": {"age_over": "30m"}}, facts(), 20 * M),
    ({"any": [{"age_over": "3h"}, {"vendor_silent_for": "1h"}]}, facts(), 1 * H),
    (
        {"sla": {"metric": "acknowledgment", "elapsed_over": "50%"}},
        facts(sla_facts=sla(acknowledgment=metric("acknowledgment", fraction=0.25))),
        7 * M + 30 * timedelta(seconds=1),
    ),
    (
        {"sla": {"metric": "acknowledgment", "remaining_under": "10m"}},
        facts(sla_facts=sla(acknowledgment=metric("acknowledgment", fraction=0.0))),
        20 * M + timedelta(microseconds=1),  # strictly less: just after 10 minutes remain
    ),
]


@pytest.mark.parametrize(("when", "f", "expected"), CASES)
def test_answer_holds_until_the_turn_and_changes_at_it(
    when: dict[str, Any], f: Facts, expected: timedelta
) -> None:
    """No instant before ``turns_at`` answers differently; at ``turns_at`` it changes."""
    at = turns(when, f)
    assert at == f.now + expected
    before = answer(when, f)
    step = expected / 20
    for i in range(1, 20):
        assert answer(when, aged(f, step * i)) is before, f"changed early at step {i}"
    assert answer(when, aged(f, expected)) is not before


@pytest.mark.parametrize(
    ("when", "f"),
    [
        ({"priority": P3}, facts()),
        ({"age_over": "5m"}, facts()),  # already holds, and keeps holding
        ({"sla": {"metric": "update_cadence", "elapsed_over": "50%"}}, facts(sla_facts=sla())),
        ({"escalation_level_at_least": 1}, facts()),
    ],
)
def test_conditions_time_cannot_change_have_no_turn(when: dict[str, Any], f: Facts) -> None:
    """Names, levels, a paused or pending clock, a passed age: only events change them."""
    assert turns(when, f) is None


def test_business_hours_turn_when_the_calendar_does() -> None:
    f = Facts(
        now=T0,
        psa=facts().psa,
        link=facts().link,
        business_hours=True,
        business_hours_until=T0 + 3 * H,
    )
    assert turns({"business_hours": True}, f) == T0 + 3 * H


def test_next_turn_at_takes_the_earliest_rule_that_can_apply() -> None:
    """Rules for another priority are left out; the earliest turn of the rest wins."""
    rules = ruleset(
        """
        rules:
          - name: p3-old
            when: {priority: Priority 3 - Normal Response, age_over: 20m}
            actions: [{type: vendor_note, template: old}]
          - name: old
            when: {age_over: 2h}
            actions: [{type: vendor_note, template: old}]
          - name: silent
            when: {vendor_silent_for: 1h}
            actions: [{type: vendor_note, template: silent}]
        """
    )
    f = facts()  # a P1 created 10 minutes before T0, linked at T0
    assert next_turn_at(rules, f) == T0 + 1 * H
    assert next_turn_at(rules, with_now(f, T0 + 90 * M)) == T0 + 110 * M
