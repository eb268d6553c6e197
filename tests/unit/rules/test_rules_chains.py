"""Chains: due times with waits, repeats and hours windows; stops; snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ticketbridge.rules import chains
from ticketbridge.rules.chains import (
    ChainProgress,
    ChainSnapshot,
    plan,
    start_chain,
    window_resolver,
)
from ticketbridge.rules.conditions import Subject
from ticketbridge.rules.models import _ACCEPTED_WORDS, RuleModel, accept_field_words
from ticketbridge.sla.models import CalendarConfig

from .helpers import T0, H, M, facts


def snap(chain: list[dict[str, Any]], timezone: str = "UTC", **rule: Any) -> ChainSnapshot:
    model = RuleModel.model_validate({"name": "c", "chain": chain, **rule})
    return ChainSnapshot.from_rule(model, source="test", timezone=timezone)


NOTE = [{"type": "vendor_note", "template": "x"}]


def dues(
    s: ChainSnapshot, start: datetime, until: datetime, **kw: Any
) -> list[tuple[int, int, datetime]]:
    progress = start_chain(s, start, **kw)
    result = plan(s, progress, facts(until), until, **kw)
    return [(r.key.step, r.key.repetition, r.due_at) for r in result.due]


class TestWaits:
    def test_after_counts_from_the_previous_step(self) -> None:
        """Each step's wait runs from the previous step's due time; the first from the start."""
        s = snap(
            [
                {"after": "15m", "actions": NOTE},
                {"after": "30m", "actions": NOTE},
                {"actions": NOTE},
            ]
        )
        assert dues(s, T0, T0 + 2 * H) == [
            (0, 0, T0 + 15 * M),
            (1, 0, T0 + 45 * M),
            (2, 0, T0 + 45 * M),
        ]

    def test_repeats_do_not_hold_back_the_next_step(self) -> None:
        """Repetitions follow their own cadence; the next step counts from the first run."""
        s = snap(
            [
                {"repeat": 3, "every": "30m", "actions": NOTE},
                {"after": "10m", "actions": NOTE},
            ]
        )
        assert dues(s, T0, T0 + 100 * M) == [
            (0, 0, T0),
            (1, 0, T0 + 10 * M),
            (0, 1, T0 + 30 * M),
            (0, 2, T0 + 60 * M),
            (0, 3, T0 + 90 * M),
        ]

    def test_nothing_is_due_early(self) -> None:
        """A run is due at its due time, not a microsecond before."""
        s = snap([{"after": "15m", "actions": NOTE}])
        progress = start_chain(s, T0)
        before = plan(s, progress, facts(), T0 + 15 * M - M / 60_000_000)
        assert before.due == ()
        assert before.progress.steps == progress.steps
        assert before.next_due_at == T0 + 15 * M
        at = plan(s, progress, facts(), T0 + 15 * M)
        assert [r.due_at for r in at.due] == [T0 + 15 * M]
        assert at.progress.finished


class TestWindows:
    def test_deferred_over_the_weekend_and_the_dst_change(self) -> None:
        """Friday-evening runs wait for Monday 08:00 local, across the US spring-forward."""
        window = {"hours": "08:00-18:00", "days": "mon-fri"}
        s = snap(
            [
                {"after": "30m", "only_between": window, "actions": NOTE},
                {"after": "1h", "only_between": window, "actions": NOTE},
            ],
            timezone="America/New_York",
        )
        friday_1750_est = datetime(2026, 3, 6, 22, 50, tzinfo=UTC)
        monday_0800_edt = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # clocks went forward on Sunday
        assert dues(s, friday_1750_est, monday_0800_edt + 2 * H) == [
            (0, 0, monday_0800_edt),
            (1, 0, monday_0800_edt + H),
        ]
        # Inside the window nothing moves: Friday 10:00 EST + 30m.
        friday_1000 = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
        assert dues(s, friday_1000, friday_1000 + 31 * M)[0] == (0, 0, friday_1000 + 30 * M)

    def test_europe_fall_back(self) -> None:
        """A Saturday-evening run in Berlin waits for Sunday 08:00 CET, after clocks go back."""
        s = snap([{"only_between": "08:00-18:00", "actions": NOTE}], timezone="Europe/Berlin")
        saturday_1900_cest = datetime(2026, 10, 24, 17, 0, tzinfo=UTC)
        sunday_0800_cet = datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
        assert dues(s, saturday_1900_cest, sunday_0800_cet + H) == [(0, 0, sunday_0800_cet)]

    def test_overnight_window(self) -> None:
        """A '22:00-06:00' window runs past midnight."""
        s = snap([{"only_between": "22:00-06:00", "actions": NOTE}])
        noon = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
        assert dues(s, noon, noon + 12 * H) == [(0, 0, datetime(2026, 3, 4, 22, 0, tzinfo=UTC))]
        three_am = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)
        assert dues(s, three_am, three_am + M) == [(0, 0, three_am)]

    def test_repetitions_do_not_pile_up_at_the_opening(self) -> None:
        """Each repetition counts from the previous one's due time, so deferrals do not stack."""
        s = snap([{"repeat": 3, "every": "30m", "only_between": "08:00-18:00", "actions": NOTE}])
        start = datetime(2026, 3, 4, 17, 15, tzinfo=UTC)
        next_day = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
        assert dues(s, start, next_day + H) == [
            (0, 0, start),
            (0, 1, start + 30 * M),
            (0, 2, next_day),
            (0, 3, next_day + 30 * M),
        ]

    def test_named_calendar_with_public_holiday(self) -> None:
        """A calendar window skips the calendar's public holidays and weekends."""
        cal = CalendarConfig.model_validate(
            {
                "name": "us-east",
                "timezone": "America/New_York",
                "hours": {"mon-fri": ["09:00-17:00"]},
                "holidays": {"country": "US"},
            }
        ).build()
        resolve = window_resolver({"us-east": cal})
        s = snap([{"only_between": {"calendar": "us-east"}, "actions": NOTE}])
        thursday_evening = datetime(2026, 7, 2, 23, 0, tzinfo=UTC)  # 19:00 EDT; Fri 3rd observed
        monday_0900 = datetime(2026, 7, 6, 13, 0, tzinfo=UTC)
        assert dues(s, thursday_evening, monday_0900 + H, resolve=resolve) == [(0, 0, monday_0900)]
        # A calendar that is no longer configured never holds a run back.
        assert dues(s, thursday_evening, thursday_evening, resolve=window_resolver({})) == [
            (0, 0, thursday_evening)
        ]


class TestStops:
    CHAIN = [
        {"actions": NOTE},
        {"after": "30m", "actions": NOTE},
        {"after": "30m", "actions": NOTE},
    ]

    def test_runs_before_the_stop_instant_fire_the_rest_are_cancelled(self) -> None:
        """After an outage, runs due before the acknowledgment still run; later ones do not."""
        s = snap(self.CHAIN, stop_when=["acknowledged"])
        progress = start_chain(s, T0, armed_stops=["acknowledged"])
        first = plan(s, progress, facts(T0), T0)
        assert [r.key.step for r in first.due] == [0]
        acked = facts(T0 + 2 * H, link={"acknowledged_at": T0 + 45 * M})
        later = plan(s, first.progress, acked, T0 + 2 * H)
        assert [r.key.step for r in later.due] == [1]
        assert [r.key.step for r in later.cancelled] == [2]
        assert later.stopped == "acknowledged"
        assert later.progress.stopped_at == T0 + 45 * M
        assert plan(s, later.progress, acked, T0 + 5 * H).due == ()

    def test_a_run_due_at_the_stop_instant_is_cancelled(self) -> None:
        """On a tie the stop wins: a run due at the very instant of the acknowledgment does not fire."""
        s = snap(self.CHAIN, stop_when=["acknowledged"])
        progress = start_chain(s, T0, armed_stops=["acknowledged"])
        acked = facts(T0 + H, link={"acknowledged_at": T0 + 30 * M})
        result = plan(s, progress, acked, T0 + H)
        assert [r.key.step for r in result.due] == [0]
        assert [r.due_at for r in result.cancelled] == [T0 + 30 * M, T0 + 60 * M]

    def test_a_reason_true_at_the_start_does_not_stop(self) -> None:
        """Stop reasons are edge-triggered: one already true when the chain started is ignored."""
        s = snap(self.CHAIN, stop_when=["resolved"])
        progress = start_chain(s, T0, armed_stops=[])
        resolved = facts(T0 + 2 * H, link={"resolved": True, "resolved_at": T0 - M})
        result = plan(s, progress, resolved, T0 + 2 * H)
        assert [r.key.step for r in result.due] == [0, 1, 2]
        assert result.stopped is None

    def test_unknown_instant_stops_now(self) -> None:
        """A stop without a known instant (conditions no longer hold) takes effect at `now`."""
        s = snap(
            self.CHAIN,
            stop_when=["conditions_false"],
            when={"priority": "Priority 1 - Emergency Response"},
        )
        progress = start_chain(s, T0, armed_stops=["conditions_false"])
        lowered = facts(T0 + 40 * M, psa={"priority": "Priority 3 - Normal Response"})
        result = plan(s, progress, lowered, T0 + 40 * M)
        assert [r.key.step for r in result.due] == [0, 1]
        assert result.progress.stopped_at == T0 + 40 * M
        assert result.progress.stop_reason == "conditions_false"

    def test_ball_leaving_the_vendor(self) -> None:
        """ball_not_vendor stops the chain from the instant the ball moved."""
        from ticketbridge.sla.models import Ball

        s = snap(self.CHAIN, stop_when=["ball_not_vendor"])
        progress = start_chain(s, T0, armed_stops=["ball_not_vendor"])
        moved = facts(T0 + H, link={"ball": Ball.CLIENT, "ball_since": T0 + 10 * M})
        result = plan(s, progress, moved, T0 + H)
        assert [r.key.step for r in result.due] == [0]
        assert [r.key.step for r in result.cancelled] == [1, 2]
        assert result.progress.stopped_at == T0 + 10 * M


class TestCadence:
    def test_cadence_is_its_own_step_and_coalesces_after_an_outage(self) -> None:
        """A client-update cadence repeats until stopped; missed ticks collapse into one run."""
        s = snap([{"actions": [*NOTE, {"type": "client_update", "every": "60m"}]}])
        assert [st.label for st in s.steps] == ["chain[0]", "chain[0].actions[1]"]
        assert s.steps[1].repeat is None
        progress = start_chain(s, T0)
        first = plan(s, progress, facts(), T0)
        assert [(r.key.step, r.key.repetition) for r in first.due] == [(0, 0), (1, 0)]
        outage = plan(s, first.progress, facts(), T0 + 5 * H + 10 * M)
        assert [(r.key.step, r.key.repetition, r.due_at) for r in outage.due] == [
            (1, 5, T0 + 5 * H)
        ]
        assert [r.key.repetition for r in outage.coalesced] == [1, 2, 3, 4]
        assert outage.due[0].previous_due_at == T0 + 4 * H
        assert outage.progress.steps[1].next_due == T0 + 6 * H

    def test_upcoming_lists_the_next_runs(self) -> None:
        """upcoming shows what fires next and when, across steps, in order."""
        s = snap(
            [
                {"after": "10m", "actions": NOTE},
                {"after": "1h", "repeat": 1, "every": "15m", "actions": NOTE},
            ]
        )
        result = plan(s, start_chain(s, T0), facts(), T0, lookahead=3)
        assert [(r.key.step, r.key.repetition, r.due_at) for r in result.upcoming] == [
            (0, 0, T0 + 10 * M),
            (1, 0, T0 + 70 * M),
            (1, 1, T0 + 85 * M),
        ]


class TestSnapshots:
    def test_json_round_trip_keeps_identity(self) -> None:
        """A snapshot survives JSON unchanged, digest included."""
        s = snap(
            [
                {
                    "after": "15m",
                    "only_between": {"hours": "08:00-18:00", "days": "mon-fri"},
                    "actions": NOTE,
                }
            ],
            timezone="Europe/London",
        )
        data = json.loads(json.dumps(s.to_data()))
        back = ChainSnapshot.from_data(data)
        assert back == s
        assert back.digest == s.digest
        assert back.steps[0].window is not None
        assert back.steps[0].window.timezone == "Europe/London"
        assert back.to_data() == s.to_data()

    def test_tampering_is_detected(self) -> None:
        """Stored content that does not match its digest is refused."""
        data = snap([{"after": "15m", "actions": NOTE}]).to_data()
        data["steps"][0]["after"] = 60
        with pytest.raises(ValueError, match="does not match its digest"):
            ChainSnapshot.from_data(data)

    def test_digest_follows_content(self) -> None:
        """Different chains have different digests; the same chain the same digest."""
        a = snap([{"after": "15m", "actions": NOTE}])
        assert a.digest == snap([{"after": "15m", "actions": NOTE}]).digest
        assert a.digest != snap([{"after": "16m", "actions": NOTE}]).digest

    def test_to_data_is_a_copy(self) -> None:
        """Changing the exported data does not change the snapshot."""
        s = snap([{"after": "15m", "actions": NOTE}])
        data = s.to_data()
        data["steps"][0]["after"] = 1
        assert s.to_data()["steps"][0]["after"] == 900

    def test_snapshot_stored_in_product_words_still_loads(self, monkeypatch) -> None:
        """A snapshot stored with a product's words for ticket fields (by an earlier version)
        loads with the words the daemon accepts, and its conditions still work."""
        monkeypatch.setattr(chains, "_SNAPSHOT_CACHE", {})
        monkeypatch.setattr("ticketbridge.rules.models._ACCEPTED_WORDS", dict(_ACCEPTED_WORDS))
        move = [{"type": "move_psa_ticket", "queue": "Desk 2", "group": "Tier 2"}]
        data = snap([{"after": "15m", "actions": move}], when={"queue": "Desk"}).to_data()
        body = {k: v for k, v in data.items() if k != "digest"}
        body["when"] = {"lane": "Desk"}
        body["steps"][0]["actions"][0]["action"] = {
            "type": "move_psa_ticket",
            "lane": "Desk 2",
            "crew": "Tier 2",
            "only_up": True,
        }
        stored = {**body, "digest": chains._digest(body)}
        accept_field_words({"lane": "queue", "crew": "group"})
        back = ChainSnapshot.from_data(stored)
        action = back.steps[0].actions[0][1]
        matches = back.compiled_when().test
        assert ("Desk", "Desk 2", "Tier 2", True, False) == (
            back.when.queue[0] if back.when.queue else None,
            action.queue,
            action.group,
            matches(Subject(facts(psa={"queue": "Desk"}))),
            matches(Subject(facts(psa={"queue": "Other"}))),
        )

    def test_progress_round_trip(self) -> None:
        """Progress survives JSON and lists the runs behind it."""
        s = snap([{"repeat": 2, "every": "10m", "actions": NOTE}])
        result = plan(s, start_chain(s, T0), facts(), T0 + 12 * M)
        back = ChainProgress.from_data(json.loads(json.dumps(result.progress.to_data())))
        assert back == result.progress
        assert [str(k) for k in back.executed("c")] == ["c/0/0", "c/0/1"]
