"""Conditions: every condition type passes and fails with a readable reason."""

from __future__ import annotations

from typing import Any

import pytest

from ticketbridge.rules.conditions import Subject, compile_when
from ticketbridge.rules.facts import Facts, VendorNote
from ticketbridge.rules.models import When
from ticketbridge.sla.models import Ball

from .helpers import P1, P3, T0, H, M, facts, metric, ruleset, sla


def check(when: dict[str, Any], f: Facts, **subject: Any) -> tuple[bool, list[str]]:
    """Fast path and explain path must agree; returns (result, leaf reasons)."""
    cond = compile_when(When.model_validate(when))
    s = Subject(f, **subject)
    out = cond.explain(s)
    assert cond.test(s) is out.passed
    return out.passed, [leaf.reason for leaf in out.leaves()]


class TestStringConditions:
    def test_priority_reason_when_failing(self) -> None:
        """A failing priority names the actual value and the wanted ones."""
        ok, reasons = check({"priority": [P1]}, facts(psa={"priority": P3}))
        assert not ok
        assert reasons == [f"priority is {P3!r}, needs one of [{P1!r}]"]

    def test_priority_ignores_case_and_spacing(self) -> None:
        """Names compare without case and repeated whitespace."""
        ok, _ = check({"priority": "priority 1  - EMERGENCY response"}, facts())
        assert ok

    @pytest.mark.parametrize(
        ("key", "value", "psa", "link"),
        [
            ("queue", "Vendor Escalations", {}, {}),
            ("type", "Vendor Incident", {}, {}),
            ("company", ["GLOBEX", "ACME"], {}, {}),
            ("psa_status", "Waiting on Vendor", {}, {}),
            ("assignee", "jsmith", {"assignee": "jsmith"}, {}),
            ("group", "Tier 2", {"group": "Tier 2"}, {}),
            ("subtype", "Circuit", {"subtype": "Circuit"}, {}),
            ("connection", "cw-snow", {}, {}),
            ("vendor", "snow", {}, {}),
            ("vendor_status", "New", {}, {}),
            ("vendor_priority", 2, {}, {}),
        ],
    )
    def test_each_string_condition_passes_and_fails(
        self, key: str, value: Any, psa: dict[str, Any], link: dict[str, Any]
    ) -> None:
        """Each string condition matches its fact and fails on another value."""
        f = facts(psa=psa, link=link)
        assert check({key: value}, f)[0]
        assert not check({key: "something else"}, f)[0]

    @pytest.mark.parametrize(
        ("key", "psa", "link"),
        [
            ("psa_class", {"status_class": "waiting_on_third_party"}, {}),
            ("vendor_class", {}, {"vendor_class": "waiting_on_third_party"}),
        ],
    )
    def test_status_class_conditions(
        self, key: str, psa: dict[str, Any], link: dict[str, Any]
    ) -> None:
        """Class conditions match the status class, whatever the product calls the status."""
        f = facts(psa=psa, link=link)
        passed, reasons = check({key: ["waiting_on_customer", "waiting_on_third_party"]}, f)
        failed = check({key: "working"}, f)[0]
        label = "PSA status class" if key == "psa_class" else "vendor status class"
        assert (True, False) == (passed, failed)
        wanted = "['waiting_on_customer', 'waiting_on_third_party']"
        assert [f"{label} is 'waiting_on_third_party' (one of {wanted})"] == reasons

    def test_an_unknown_status_class_is_refused(self) -> None:
        """A class that does not exist is a validation error, not a rule that never fires."""
        with pytest.raises(ValueError, match="vendor_class"):
            When.model_validate({"vendor_class": "on_hold"})

    def test_unset_value_matches_nothing(self) -> None:
        """A fact the ticket does not have fails, saying it is not set."""
        ok, reasons = check({"assignee": "jsmith"}, facts())
        assert not ok
        assert reasons == ["assignee is not set, needs one of ['jsmith']"]

    def test_tier_comes_from_the_subject(self) -> None:
        """The tier condition uses the derived tier, not only the facts."""
        f = facts(psa={"queue": "Service Desk", "group": "Tier 2"})
        rs = ruleset("rules: []")
        tier = rs.tier_of(f.psa.queue, f.psa.group, f.psa.assignee)
        assert tier == "Tier 2"
        assert check({"tier": "Tier 2"}, f, tier=tier)[0]
        assert rs.tier_of("Service Desk", None, None) == "Tier 1"
        assert rs.tier_of("Unknown Board", None, None) is None


class TestStateConditions:
    def test_ball(self) -> None:
        """The ball condition compares whose move it is."""
        assert check({"ball": "vendor"}, facts())[0]
        ok, reasons = check({"ball": ["msp", "client"]}, facts())
        assert not ok
        assert reasons == ["ball is with 'vendor', needs one of ['client', 'msp']"]
        assert check({"ball": "msp"}, facts(link={"ball": Ball.MSP}))[0]

    @pytest.mark.parametrize(
        ("key", "f_true", "f_false"),
        [
            ("closed", facts(psa={"closed": True}), facts()),
            ("resolved", facts(link={"resolved": True}), facts()),
            ("breached", facts(link={"breached": True}), facts()),
            (
                "vendor_linked",
                facts(),
                facts(link={"vendor_ticket_id": None, "vendor_ticket_number": None}),
            ),
            ("vendor_escalation_api", facts(), facts(link={"vendor_escalation_api": False})),
            ("acknowledged", facts(link={"acknowledged_at": T0}), facts()),
            ("business_hours", facts(business_hours=True), facts(business_hours=False)),
            ("escalated", facts(link={"escalated": True}), facts()),
        ],
    )
    def test_flags(self, key: str, f_true: Facts, f_false: Facts) -> None:
        """Each yes/no condition holds for `true` on the first facts and for `false` on the second."""
        assert check({key: True}, f_true)[0]
        assert not check({key: True}, f_false)[0]
        assert check({key: False}, f_false)[0]

    def test_breached_also_reads_the_sla_clocks(self) -> None:
        """A breach on any SLA metric counts as breached even if the link flag is not set."""
        f = facts(sla_facts=sla(resolution=metric("resolution", breached=True, fraction=1.2)))
        assert check({"breached": True}, f)[0]

    def test_unknown_business_hours_fail(self) -> None:
        """business_hours with unknown hours fails both ways and says so."""
        ok, reasons = check({"business_hours": True}, facts())
        assert not ok
        assert reasons == ["within business hours: unknown, needs yes"]
        assert not check({"business_hours": False}, facts())[0]

    def test_escalation_level_bounds(self) -> None:
        """Level bounds use the subject's level (facts combined with the rules' record)."""
        f = facts(link={"escalation_level": 1})
        assert check({"escalation_level_below": 2}, f)[0]
        ok, reasons = check({"escalation_level_below": 2}, f, escalation_level=2)
        assert not ok
        assert reasons == ["escalation level is 2, needs below 2"]
        assert check({"escalation_level_at_least": 2}, f, escalation_level=3)[0]


class TestTimeConditions:
    def test_age_over_with_ready_at(self) -> None:
        """age_over is at least; a failing one says when it will hold."""
        f = facts(T0, psa={"created_at": T0 - 10 * M})
        cond = compile_when(When.model_validate({"age_over": "30m"}))
        out = cond.explain(Subject(f))
        assert not out.passed
        assert out.leaves()[0].reason == "ticket age 10m, needs at least 30m"
        assert out.ready_at == T0 + 20 * M
        assert cond.test(Subject(facts(T0 + 20 * M, psa={"created_at": T0 - 10 * M})))

    def test_age_under_and_unknown_age(self) -> None:
        """age_under is strictly less; an unknown creation time fails."""
        assert check({"age_under": "11m"}, facts())[0]
        assert not check({"age_under": "10m"}, facts())[0]
        ok, reasons = check({"age_over": "1m"}, facts(psa={"created_at": None}))
        assert not ok
        assert reasons == ["ticket age unknown, needs at least 1m"]

    def test_vendor_silent_for_counts_from_last_public_update(self) -> None:
        """Silence runs from the last public update, or from the link when there is none."""
        f = facts(T0 + 90 * M, link={"vendor_last_public_update_at": T0 + 45 * M})
        ok, reasons = check({"vendor_silent_for": "60m"}, f)
        assert not ok
        assert reasons == ["vendor silent for 45m since its last public update, needs at least 1h"]
        ok, reasons = check({"vendor_silent_for": "60m"}, facts(T0 + 60 * M))
        assert ok
        assert reasons == [
            "vendor silent for 1h since the link was made (no public update yet) (at least 1h)"
        ]
        out = compile_when(When.model_validate({"vendor_silent_for": "60m"})).explain(Subject(f))
        assert out.ready_at == T0 + 105 * M


class TestSlaConditions:
    def test_elapsed_over_and_under(self) -> None:
        """elapsed_over is inclusive, elapsed_under strict; both name the percentage."""
        f = facts(sla_facts=sla(acknowledgment=metric("acknowledgment", fraction=0.75)))
        ok, reasons = check({"sla": {"metric": "acknowledgment", "elapsed_over": "75%"}}, f)
        assert ok
        assert reasons == ["acknowledgment elapsed 75% (at least 75%)"]
        assert not check({"sla": {"metric": "acknowledgment", "elapsed_under": 75}}, f)[0]
        assert check({"sla": {"metric": "acknowledgment", "elapsed_under": 76}}, f)[0]

    def test_remaining_under_and_breached(self) -> None:
        """remaining_under compares the time left; breached the breach flag."""
        f = facts(sla_facts=sla(acknowledgment=metric("acknowledgment", fraction=0.8)))
        assert check({"sla": {"metric": "acknowledgment", "remaining_under": "10m"}}, f)[0]
        ok, reasons = check({"sla": {"metric": "acknowledgment", "breached": True}}, f)
        assert not ok
        assert reasons == ["acknowledgment is not breached, needs breached"]

    def test_status_and_several_tests_in_one_block(self) -> None:
        """All tests of one sla block must hold, each reported as its own leaf."""
        f = facts(
            sla_facts=sla(acknowledgment=metric("acknowledgment", status="paused", fraction=0.6))
        )
        ok, reasons = check(
            {"sla": {"metric": "acknowledgment", "elapsed_over": "50%", "status": "running"}}, f
        )
        assert not ok
        assert reasons == [
            "acknowledgment elapsed 60% (at least 50%)",
            "acknowledgment clock is paused, needs one of ['running']",
        ]

    def test_no_sla_clock(self) -> None:
        """Without SLA facts an sla condition fails and says why."""
        ok, reasons = check({"sla": {"metric": "resolution", "breached": False}}, facts())
        assert not ok
        assert reasons == ["resolution: no SLA clock on this link"]

    def test_ready_at_for_calendar_time_clocks(self) -> None:
        """A running calendar-time clock predicts its threshold; a business-time one does not."""
        cal = metric("acknowledgment", fraction=0.5, due_at=T0 + 15 * M)
        f = facts(sla_facts=sla(acknowledgment=cal))
        when = When.model_validate({"sla": {"metric": "acknowledgment", "elapsed_over": "75%"}})
        assert compile_when(when).explain(Subject(f)).ready_at == T0 + timedelta_min(7.5)
        breach = When.model_validate({"sla": {"metric": "acknowledgment", "breached": True}})
        assert compile_when(breach).explain(Subject(f)).ready_at == T0 + 15 * M
        biz = facts(
            sla_facts=sla(acknowledgment=metric("acknowledgment", fraction=0.5, business=True))
        )
        assert compile_when(when).explain(Subject(biz)).ready_at is None


def timedelta_min(minutes: float) -> Any:
    return M * minutes


class TestCombinators:
    def test_any_all_not(self) -> None:
        """any needs one, all needs each, not inverts; reasons nest under them."""
        when = {
            "any": [
                {"priority": P3},
                {"all": [{"queue": "Vendor Escalations"}, {"closed": False}]},
            ],
            "not": {"company": "GLOBEX"},
        }
        f = facts()
        cond = compile_when(When.model_validate(when))
        out = cond.explain(Subject(f))
        assert out.passed
        assert cond.test(Subject(f))
        lines = out.lines()
        assert lines[0] == "[pass] all 2 conditions hold"
        assert "  [pass] any: 1 of 2 hold" in lines
        assert f"    [FAIL] priority is {P1!r}, needs one of [{P3!r}]" in lines
        assert "  [pass] not: the inner conditions fail" in lines
        assert not cond.test(Subject(facts(psa={"company": "GLOBEX"})))

    def test_empty_conditions_always_hold(self) -> None:
        """A rule without conditions matches every link."""
        cond = compile_when(When())
        assert cond.always
        assert cond.test(Subject(facts()))
        assert cond.explain(Subject(facts())).reason == "no conditions (always holds)"

    def test_all_predicts_when_every_failing_leaf_holds(self) -> None:
        """A conjunction of timed conditions holds from the latest of their ready times."""
        when = When.model_validate({"age_over": "30m", "vendor_silent_for": "2h"})
        out = compile_when(when).explain(Subject(facts()))
        assert not out.passed
        assert out.ready_at == max(T0 + 20 * M, T0 + 2 * H)

    def test_priority_index(self) -> None:
        """Top-level priorities are exposed for indexing; nested ones are not."""
        assert compile_when(When.model_validate({"priority": [P1, P3]})).index_priorities == {
            "priority 1 - emergency response",
            "priority 3 - normal response",
        }
        nested = When.model_validate({"any": [{"priority": P1}]})
        assert compile_when(nested).index_priorities is None


class TestFacts:
    def test_naive_datetimes_are_refused(self) -> None:
        """Facts hold aware UTC datetimes only."""
        from datetime import datetime

        with pytest.raises(ValueError, match="naive"):
            facts(psa={"created_at": datetime(2026, 1, 1, 9, 0)})

    def test_vendor_note_and_sla_snapshot(self) -> None:
        """sla_facts_from_snapshot reads elapsed fraction, breach and acknowledgment time."""
        from datetime import timedelta

        from ticketbridge.rules import sla_facts_from_snapshot
        from ticketbridge.sla.calendar import BusinessCalendar
        from ticketbridge.sla.clock import (
            ClockPolicy,
            EventKind,
            MetricPolicy,
            SlaEvent,
            repair,
            snapshot,
        )

        policy = ClockPolicy(
            calendar=BusinessCalendar.always_open(),
            acknowledgment=MetricPolicy(timedelta(minutes=30), business=False),
            resolution=MetricPolicy(timedelta(hours=4), business=False),
        )
        events = [
            SlaEvent(T0, EventKind.OPENED, 1),
            SlaEvent(T0 + 20 * M, EventKind.VENDOR_PUBLIC_UPDATE, 2),
        ]
        now = T0 + 60 * M
        sf = sla_facts_from_snapshot(snapshot(repair(events, policy, now).state, policy, now))
        assert sf.acknowledged_at == T0 + 20 * M
        assert sf.acknowledgment.status == "stopped"
        assert sf.resolution.elapsed_fraction == pytest.approx(0.25)
        assert sf.resolution.due_at == T0 + 4 * H
        assert not sf.breached
        note = VendorNote("working on it", T0, "Vendor Engineer")
        assert note.at == T0
