"""The engine: restart semantics, snapshots under rule edits, explain and simulate."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ticketbridge.rules import (
    AddNote,
    MovePsaTicket,
    escalation_from_state,
    evaluate,
    explain,
    simulate,
)
from ticketbridge.rules.engine import Evaluation

from .helpers import P1, P3, T0, H, M, facts, roundtrip, ruleset

CHAIN = """
rules:
  - name: chase
    when: {priority: "Priority 1 - Emergency Response", resolved: false}
    stop_when: [resolved]
    chain:
      - actions: [{type: vendor_note, template: "step 0 at {{ run.due_at | dt }}"}]
      - after: 30m
        actions: [{type: vendor_note, template: "step 1"}]
      - after: 30m
        repeat: 2
        every: 20m
        actions: [{type: vendor_note, template: "step 2 #{{ run.repetition }}"}]
      - after: 1h
        actions: [{type: vendor_note, template: "step 3"}]
"""


def texts(ev: Evaluation) -> list[str]:
    return [i.text for i in ev.intents if isinstance(i, AddNote)]


class TestRestart:
    def test_restart_in_the_middle_of_a_chain(self) -> None:
        """Stored state, later `now`: every overdue run once, in order, then never again."""
        rs = ruleset(CHAIN)
        first = evaluate(rs, facts(T0), None, T0)
        assert texts(first) == ["step 0 at 2026-03-03 14:00 UTC"]
        stored = roundtrip(first.state)

        # The daemon is down from T0+5m to T0+3h: everything due meanwhile runs now, in order.
        now = T0 + 3 * H
        after = evaluate(rs, facts(now), stored, now)
        assert texts(after) == ["step 1", "step 2 #0", "step 2 #1", "step 2 #2", "step 3"]
        assert [r.due_at for r in after.runs] == [
            T0 + 30 * M,
            T0 + 60 * M,
            T0 + 80 * M,
            T0 + 100 * M,
            T0 + 120 * M,
        ]
        assert stored == roundtrip(first.state), "the input state is never changed"

        # Committed: nothing comes back, at the same instant or later.
        committed = roundtrip(after.state)
        assert evaluate(rs, facts(now), committed, now).intents == ()
        again = evaluate(rs, facts(now + 5 * H), committed, now + 5 * H)
        assert again.intents == ()
        assert not again.changed

    def test_crash_before_commit_replays_the_same_keys(self) -> None:
        """Not committing the new state means the same runs come back with the same keys."""
        rs = ruleset(CHAIN)
        stored = roundtrip(evaluate(rs, facts(T0), None, T0).state)
        lost = evaluate(rs, facts(T0 + 65 * M), stored, T0 + 65 * M)
        replay = evaluate(rs, facts(T0 + 70 * M), stored, T0 + 70 * M)
        assert [i.key for i in lost.intents] == [i.key for i in replay.intents]
        assert [str(r.key) for r in replay.runs] == ["chase/1/0", "chase/2/0"]

    def test_stepwise_and_catch_up_give_the_same_runs(self) -> None:
        """Evaluating every minute or once after an outage yields the same runs and keys."""
        rs = ruleset(CHAIN)
        state: Any = None
        stepwise: list[str] = []
        for minute in range(181):
            now = T0 + minute * M
            ev = evaluate(rs, facts(now), state, now)
            stepwise.extend(i.key for i in ev.intents)
            state = roundtrip(ev.state)
        start = evaluate(rs, facts(T0), None, T0)
        jump = evaluate(rs, facts(T0 + 3 * H), roundtrip(start.state), T0 + 3 * H)
        assert stepwise == [i.key for i in (*start.intents, *jump.intents)]
        assert len(stepwise) == len(set(stepwise)) == 6

    def test_resolution_during_the_outage_cancels_only_later_runs(self) -> None:
        """Runs due before the vendor resolved still run; those after are cancelled."""
        rs = ruleset(CHAIN)
        stored = roundtrip(evaluate(rs, facts(T0), None, T0).state)
        resolved = facts(T0 + 3 * H, link={"resolved": True, "resolved_at": T0 + 70 * M})
        ev = evaluate(rs, resolved, stored, T0 + 3 * H)
        assert texts(ev) == ["step 1", "step 2 #0"]
        assert [str(r.key) for r in ev.cancelled] == ["chase/2/1", "chase/2/2", "chase/3/0"]
        assert [(s.rule, s.reason, s.at) for s in ev.stopped] == [
            ("chase", "resolved", T0 + 70 * M)
        ]
        assert ev.next_due_at is None

    def test_unknown_state_format_is_refused(self) -> None:
        """A state written by a different format version is not guessed at."""
        with pytest.raises(ValueError, match="format"):
            evaluate(ruleset(CHAIN), facts(), {"format": 99}, T0)


class TestRuleEdits:
    V1 = """
rules:
  - name: nag
    when: {priority: "Priority 1 - Emergency Response"}
    chain:
      - after: 30m
        actions: [{type: vendor_note, template: "v1"}]
"""
    V2 = """
rules:
  - name: nag
    when: {priority: "Priority 3 - Normal Response"}
    chain:
      - after: 5m
        actions: [{type: vendor_note, template: "v2"}]
"""

    def test_running_chain_keeps_its_snapshot(self) -> None:
        """Editing a rule changes new chains only; a running chain keeps timing, text, conditions."""
        v1, v2 = ruleset(self.V1), ruleset(self.V2)
        started = evaluate(v1, facts(T0), None, T0)
        (start,) = started.started
        stored = roundtrip(started.state)
        snapshot_before = copy.deepcopy(stored["chains"]["nag"]["snapshot"])

        early = evaluate(v2, facts(T0 + 10 * M), stored, T0 + 10 * M)
        assert early.intents == ()
        due = evaluate(v2, facts(T0 + 30 * M), roundtrip(early.state), T0 + 30 * M)
        assert texts(due) == ["v1"]
        assert stored["chains"]["nag"]["snapshot"] == snapshot_before
        assert stored["chains"]["nag"]["digest"] == start.snapshot.digest

        fresh = evaluate(v2, facts(T0, psa={"priority": P3}, link={"link_id": "L2"}), None, T0)
        assert fresh.started[0].snapshot.digest != start.snapshot.digest
        report = explain(v2, facts(T0 + 10 * M), stored)
        assert report.rules[0].snapshot_outdated

    def test_removed_rule_stops_its_chains(self) -> None:
        """A chain whose rule was removed (or disabled) stops and fires nothing more."""
        stored = roundtrip(evaluate(ruleset(self.V1), facts(T0), None, T0).state)
        gone = ruleset("rules: []")
        ev = evaluate(gone, facts(T0 + H), stored, T0 + H)
        assert ev.intents == ()
        assert [(s.rule, s.reason) for s in ev.stopped] == [("nag", "rule_removed")]
        later = evaluate(gone, facts(T0 + 2 * H), roundtrip(ev.state), T0 + 2 * H)
        assert later.stopped == ()
        assert not later.changed


class TestRearm:
    RULE = """
rules:
  - name: silent
    when: {vendor_silent_for: 60m}
    rearm: {rearm}
    actions: [{type: vendor_note, template: "any news?"}]
"""

    def run(self, rearm: bool) -> list[int]:
        rs = ruleset(self.RULE.replace("{rearm}", "true" if rearm else "false"))
        state: Any = None
        fired_at: list[int] = []
        last_update = T0
        for minute in range(0, 241, 5):
            now = T0 + minute * M
            if minute == 100:
                last_update = now  # the vendor finally says something
            f = facts(now, link={"vendor_last_public_update_at": last_update})
            ev = evaluate(rs, f, state, now)
            if ev.intents:
                fired_at.append(minute)
            state = roundtrip(ev.state)
        return fired_at

    def test_without_rearm_a_rule_fires_once_per_link(self) -> None:
        """Without rearm, a rule fires the first time its conditions hold, never again."""
        assert self.run(rearm=False) == [60]

    def test_rearm_fires_again_after_the_conditions_reset(self) -> None:
        """With rearm, the rule fires again each time its conditions go false then true."""
        assert self.run(rearm=True) == [60, 160]


class TestEscalationRecord:
    def test_moves_and_vendor_escalations_are_recorded(self) -> None:
        """A move to a tier raises the level; any escalating action marks the link escalated."""
        rs = ruleset(
            """
            rules:
              - name: up
                when: {queue: Service Desk}
                actions: [{type: move_psa_ticket, to_tier: Tier 3}]
              - name: only-below-2
                when: {escalation_level_below: 2}
                actions: [{type: vendor_note, template: low}]
            """
        )
        f = facts(psa={"queue": "Service Desk"})
        ev = evaluate(rs, f, None, T0)
        assert [type(i) for i in ev.intents] == [MovePsaTicket, AddNote]
        record = escalation_from_state(ev.state)
        assert (record.level, record.tier, record.escalated, record.escalated_at) == (
            2,
            "Tier 3",
            True,
            T0,
        )
        # The next pass sees level 2: a rule for lower levels no longer matches.
        later = evaluate(rs, f, roundtrip(ev.state), T0 + M)
        assert "only-below-2" not in later.matched


class TestExplain:
    def test_explain_lists_every_rule_with_reasons_and_what_comes_next(self) -> None:
        """explain shows matched and unmatched rules, failing conditions, and upcoming runs."""
        rs = ruleset(
            CHAIN
            + """
  - name: p3-only
    when: {priority: "Priority 3 - Normal Response", age_over: 2h}
    actions: [{type: lessons_learned}]
  - name: later
    when: {age_over: 2h}
    chain:
      - after: 15m
        actions: [{type: notify, channel: teams, to: desk, template: "t"}]
"""
        )
        stored = roundtrip(evaluate(rs, facts(T0), None, T0).state)
        report = explain(rs, facts(T0 + 40 * M), stored)
        text = report.render()
        by_name = {r.name: r for r in report.rules}
        assert by_name["chase"].matched
        assert by_name["chase"].fired_now == ("public note on the vendor ticket: step 1",)
        assert [u.run.due_at for u in by_name["chase"].upcoming] == [
            T0 + 60 * M,
            T0 + 80 * M,
            T0 + 100 * M,
        ]
        assert not by_name["p3-only"].matched
        assert f"[FAIL] priority is {P1!r}, needs one of ['Priority 3 - Normal Response']" in text
        assert by_name["later"].would_start_at == T0 + 110 * M
        assert [u.run.due_at for u in by_name["later"].upcoming] == [T0 + 125 * M]
        assert "next: chain[0] #0 at 2026-03-03 16:05 UTC: notify desk by teams" in text
        assert "rule chase [10-rules.yaml: rules[0]]: MATCHES" in text
        assert report.next_run() is not None
        assert report.next_run().run.due_at == T0 + 60 * M
        assert stored == roundtrip(stored), "explain does not touch the state"


class TestSimulate:
    def test_simulate_is_a_dry_run(self) -> None:
        """simulate evaluates every link at `at` and leaves the stored states alone."""
        rs = ruleset(CHAIN)
        states = {"L1": roundtrip(evaluate(rs, facts(T0), None, T0).state)}
        before = json.dumps(states, sort_keys=True)
        links = [
            facts(T0),
            facts(T0, link={"link_id": "L2"}),
            facts(T0, psa={"priority": P3}, link={"link_id": "L3"}),
        ]
        sim = simulate(rs, links, T0 + 65 * M, states)
        assert json.dumps(states, sort_keys=True) == before
        by_link = {e.link_id: e for e in sim.evaluations}
        assert texts(by_link["L1"]) == ["step 1", "step 2 #0"]
        assert texts(by_link["L2"]) == ["step 0 at 2026-03-03 15:05 UTC"]
        assert by_link["L3"].intents == ()
        assert by_link["L3"].matched == ()
        rendered = sim.render()
        assert rendered.startswith(
            "rehearsal at 2026-03-03 15:05 UTC over 3 link(s): 3 run(s), 3 intent(s)"
        )
        assert "link L3" not in rendered

    def test_simulate_needs_an_aware_time(self) -> None:
        """A naive rehearsal time is refused."""
        from datetime import datetime

        with pytest.raises(ValueError, match="aware"):
            simulate(ruleset(CHAIN), [], datetime(2026, 12, 1, 9, 0))
