"""SLA clocks from event history: targets, pauses, thresholds, bad input, repair == incremental."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketbridge.sla.calendar import BusinessCalendar, WorkInterval
from ticketbridge.sla.clock import (
    ClockPolicy,
    EventKind,
    Metric,
    MetricPolicy,
    MetricStatus,
    PauseInterval,
    Recomputed,
    SlaEvent,
    SlaSnapshot,
    SlaState,
    ThresholdCrossing,
    advance,
    apply,
    elapsed_at,
    next_wakeup,
    repair,
    snapshot,
    sweep_status,
)
from ticketbridge.sla.models import Ball, ContractConfig

H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)
ZERO = timedelta(0)

#: Monday-Friday 09:00-17:00 UTC keeps the arithmetic in the tests readable.
CAL = BusinessCalendar(weekly={d: [WorkInterval(540, 1020)] for d in range(5)}, name="utc-9-5")
POLICY = ClockPolicy(
    calendar=CAL,
    acknowledgment=MetricPolicy(H),
    update_cadence=MetricPolicy(4 * H),
    resolution=MetricPolicy(16 * H),
)
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)  # Monday 09:00


def ev(at: datetime, kind: str, seq: int, value: str | None = None) -> SlaEvent:
    return SlaEvent(at, EventKind(kind), seq, value)


def run(
    events: Sequence[SlaEvent], now: datetime, policy: ClockPolicy = POLICY
) -> tuple[Recomputed, SlaSnapshot]:
    rec = repair(events, policy, now)
    return rec, snapshot(rec.state, policy, now)


# -- targets, due_at, thresholds ---------------------------------------------------------------


def test_acknowledged_in_time_starts_the_update_cadence() -> None:
    """A public update after 40 min meets a 1 h acknowledgment and starts the cadence clock."""
    events = [ev(T0, "opened", 1), ev(T0 + 40 * M, "vendor_public_update", 2)]
    rec, snap = run(events, T0 + 2 * H)
    ack, cad = snap.acknowledgment, snap.update_cadence
    assert rec.warnings == ()
    assert ack.status is MetricStatus.STOPPED
    assert ack.elapsed == 40 * M
    assert not ack.breached
    assert ack.crossings == (ThresholdCrossing(50, T0 + 30 * M, 1),)
    assert cad.status is MetricStatus.RUNNING
    assert cad.started_at == T0 + 40 * M
    assert cad.elapsed == H + 20 * M
    assert cad.due_at == T0 + 40 * M + 4 * H


def test_breach_is_detected_exactly_after_due_at() -> None:
    """At due_at the target is still met; one microsecond later it is breached at due_at."""
    rec, _ = run([ev(T0, "opened", 1)], T0)
    due = T0 + H
    at_due = snapshot(rec.state, POLICY, due).acknowledgment
    assert at_due.due_at == due
    assert not at_due.breached
    assert at_due.fraction == 1.0
    assert at_due.remaining == ZERO
    assert [c.percent for c in at_due.crossings] == [50, 75, 100]
    assert at_due.crossings[1].at == T0 + 45 * M
    late = snapshot(rec.state, POLICY, due + US).acknowledgment
    assert late.breached
    assert late.breached_at == due
    assert late.overdue == US
    assert Metric.ACKNOWLEDGMENT not in sweep_status(rec.state, due).breached
    assert Metric.ACKNOWLEDGMENT in sweep_status(rec.state, due + US).breached


def test_stopping_exactly_at_due_at_meets_the_target() -> None:
    """An acknowledgment at exactly due_at is on time."""
    events = [ev(T0, "opened", 1), ev(T0 + H, "acknowledged", 2)]
    _, snap = run(events, T0 + 5 * H)
    assert not snap.acknowledgment.breached
    assert snap.acknowledgment.overdue == ZERO
    assert snap.acknowledgment.crossings[-1] == ThresholdCrossing(100, T0 + H, 1)


def test_allowance_running_out_at_closing_time_breaches_at_next_opening() -> None:
    """Friday 16:00 + 1 business hour: 100 % at 17:00, due_at (breach point) Monday 09:00."""
    fri = datetime(2026, 1, 9, 16, tzinfo=UTC)
    mon = datetime(2026, 1, 12, 9, tzinfo=UTC)
    rec, sat = run([ev(fri, "opened", 1)], fri + 20 * H)
    ack = sat.acknowledgment
    assert ack.crossings[-1] == ThresholdCrossing(100, fri + H, 1)
    assert ack.due_at == mon
    assert not ack.breached
    assert ack.remaining == ZERO
    assert not snapshot(rec.state, POLICY, mon).acknowledgment.breached
    assert snapshot(rec.state, POLICY, mon + US).acknowledgment.breached_at == mon
    _, acked = run([ev(fri, "opened", 1), ev(mon, "acknowledged", 2)], mon + H)
    assert not acked.acknowledgment.breached


def test_thresholds_above_100_percent_are_reported_after_the_breach() -> None:
    """A 150 % threshold is crossed half an allowance after the breach."""
    policy = ClockPolicy(calendar=CAL, acknowledgment=MetricPolicy(H), thresholds=(50, 100, 150))
    rec, snap = run([ev(T0, "opened", 1)], T0 + 2 * H, policy)
    crossings = snap.acknowledgment.crossings
    assert [(c.percent, c.at) for c in crossings] == [
        (50, T0 + 30 * M),
        (100, T0 + H),
        (150, T0 + 90 * M),
    ]
    assert sweep_status(rec.state, T0 + 80 * M).levels[0] == (Metric.ACKNOWLEDGMENT, 100)


def test_elapsed_at_reads_a_checkpoint_cheaply() -> None:
    """elapsed_at gives each metric's elapsed time at now without building a snapshot."""
    rec, _ = run([ev(T0, "opened", 1), ev(T0 + 20 * M, "vendor_public_update", 2)], T0 + H)
    later = T0 + 3 * 24 * H  # Thursday 09:00: three business days later
    assert elapsed_at(rec.state, POLICY, later) == (20 * M, 24 * H - 20 * M, 24 * H)
    assert elapsed_at(rec.state, POLICY, T0) == (20 * M, ZERO, 20 * M)


def test_next_wakeup_and_sweep_status_from_the_checkpoint() -> None:
    """The sweep needs no calendar: it compares now with precomputed instants."""
    rec, _ = run([ev(T0, "opened", 1)], T0)
    assert next_wakeup(rec.state) == T0 + 30 * M
    status = sweep_status(rec.state, T0 + 50 * M)
    assert status.at_risk == (Metric.ACKNOWLEDGMENT,)
    assert dict(status.levels) == {Metric.ACKNOWLEDGMENT: 75, Metric.RESOLUTION: 0}
    assert status.next_wakeup == T0 + H
    assert status.breaches == ()


# -- pauses and the ball ---------------------------------------------------------------------


def test_ball_away_from_vendor_pauses_and_is_recorded() -> None:
    """Time with the MSP or its client does not count; pauses are kept as intervals."""
    events = [
        ev(T0, "opened", 1),
        ev(T0 + 2 * H, "ball", 2, "msp"),
        ev(T0 + 3 * H, "ball", 3, "client"),
        ev(T0 + 24 * H, "ball", 4, "vendor"),
    ]
    rec, paused = run(events[:3], T0 + 20 * H)
    assert paused.resolution.status is MetricStatus.PAUSED
    assert paused.resolution.elapsed == 2 * H
    assert paused.resolution.due_at is None
    assert paused.pauses[-1] == PauseInterval(T0 + 3 * H, None, Ball.CLIENT)
    assert next_wakeup(rec.state) is None
    _, snap = run(events, T0 + 27 * H)
    res = snap.resolution
    assert res.status is MetricStatus.RUNNING
    assert res.elapsed == 5 * H
    assert res.due_at == datetime(2026, 1, 7, 15, tzinfo=UTC)  # 14 h left from Tuesday 09:00
    assert snap.pauses == (
        PauseInterval(T0 + 2 * H, T0 + 3 * H, Ball.MSP),
        PauseInterval(T0 + 3 * H, T0 + 24 * H, Ball.CLIENT),
    )


def test_update_cadence_gaps_reset_on_each_update_and_breach_per_episode() -> None:
    """Each vendor update starts a new gap; a 5 h gap breaches once, the next gaps are fine."""
    events = [
        ev(T0, "opened", 1),
        ev(T0 + 10 * M, "vendor_public_update", 2),
        ev(T0 + 5 * H + 10 * M, "vendor_public_update", 3),
        ev(T0 + 6 * H, "vendor_public_update", 4),
    ]
    _, snap = run(events, T0 + 7 * H)
    cad = snap.update_cadence
    assert cad.episode == 3
    assert cad.breach_count == 1
    assert cad.breached_at == T0 + 4 * H + 10 * M
    assert cad.max_elapsed == 5 * H
    assert cad.overdue == H
    assert cad.elapsed == H
    assert cad.due_at == T0 + 26 * H  # 2 h left on Monday, 2 h on Tuesday
    assert {c.episode for c in cad.crossings} == {1}


def test_update_cadence_counts_only_vendor_time() -> None:
    """A gap spent waiting on the MSP does not count against the vendor's update cadence."""
    events = [
        ev(T0, "opened", 1),
        ev(T0 + 10 * M, "vendor_public_update", 2),
        ev(T0 + H + 10 * M, "ball", 3, "msp"),
        ev(T0 + 6 * H, "ball", 4, "vendor"),
    ]
    _, snap = run(events, T0 + 7 * H)
    assert snap.update_cadence.elapsed == 2 * H
    assert not snap.update_cadence.breached


def test_reopen_resumes_resolution_with_time_already_used() -> None:
    """Resolution stops at 'resolved' and resumes on 'reopened' with the elapsed time kept."""
    events = [
        ev(T0, "opened", 1),
        ev(T0 + 3 * H, "resolved", 2),
        ev(T0 + 24 * H, "reopened", 3),
    ]
    _, done = run(events[:2], T0 + 20 * H)
    assert done.resolution.status is MetricStatus.STOPPED
    assert done.resolution.elapsed == 3 * H
    assert done.acknowledgment.status is MetricStatus.STOPPED
    assert done.resolved_at == T0 + 3 * H
    _, again = run(events, T0 + 26 * H)
    assert again.resolution.status is MetricStatus.RUNNING
    assert again.resolution.elapsed == 5 * H
    assert again.reopen_count == 1
    assert again.resolved_at is None
    assert again.update_cadence.status is MetricStatus.RUNNING
    assert again.update_cadence.started_at == T0 + 24 * H


def test_ball_resolved_stops_and_leaving_it_reopens() -> None:
    """Ball 'resolved' (e.g. Closed) resolves the ticket; the ball leaving it reopens it."""
    events = [
        ev(T0, "opened", 1),
        ev(T0 + H, "ball", 2, "resolved"),
        ev(T0 + 2 * H, "ball", 3, "vendor"),
    ]
    _, closed = run(events[:2], T0 + 90 * M)
    assert closed.resolved_at == T0 + H
    assert closed.resolution.status is MetricStatus.STOPPED
    _, snap = run(events, T0 + 3 * H)
    assert snap.reopen_count == 1
    assert snap.resolution.elapsed == 2 * H


@pytest.mark.parametrize(
    ("ack_by", "trigger"),
    [("in_progress", "in_progress"), ("assigned", "assigned")],
)
def test_acknowledgment_by_status_ignores_public_comments(ack_by: str, trigger: str) -> None:
    """With acknowledgment_by in_progress/assigned only that event (or 'acknowledged') counts."""
    policy = ClockPolicy(
        calendar=CAL,
        acknowledgment=MetricPolicy(H),
        acknowledgment_by=ack_by,  # type: ignore[arg-type]
    )
    events = [
        ev(T0, "opened", 1),
        ev(T0 + 10 * M, "vendor_public_update", 2),
        ev(T0 + 90 * M, trigger, 3),
    ]
    _, snap = run(events, T0 + 2 * H, policy)
    assert snap.acknowledgment.stopped_at == T0 + 90 * M
    assert snap.acknowledgment.breached
    assert snap.update_cadence.started_at == T0 + 90 * M


def test_resolution_ends_an_unacknowledged_ticket() -> None:
    """Resolving before any acknowledgment stops the acknowledgment clock at the resolution."""
    _, snap = run([ev(T0, "opened", 1), ev(T0 + 20 * M, "resolved", 2)], T0 + H)
    assert snap.acknowledgment.status is MetricStatus.STOPPED
    assert snap.acknowledgment.elapsed == 20 * M
    assert snap.update_cadence.status is MetricStatus.STOPPED
    assert snap.update_cadence.started_at is None


def test_calendar_time_target_counts_weekends() -> None:
    """business: false counts plain time, nights and weekends included."""
    policy = ClockPolicy(calendar=CAL, resolution=MetricPolicy(24 * H, business=False))
    fri = datetime(2026, 1, 9, 16, tzinfo=UTC)
    _, snap = run([ev(fri, "opened", 1)], fri + 30 * H, policy)
    assert snap.resolution.elapsed == 30 * H
    assert snap.resolution.breached_at == fri + 24 * H
    assert snap.acknowledgment.elapsed == H  # no target: business time, tracked only


def test_metric_without_target_is_tracked_but_never_breaches() -> None:
    """No target: elapsed is counted, due_at/fraction/remaining are None, never breached."""
    policy = ClockPolicy(calendar=CAL)
    rec, snap = run([ev(T0, "opened", 1)], T0 + 100 * H, policy)
    res = snap.resolution
    assert res.elapsed == 8 * 5 * H - 8 * H + 4 * H  # Monday 09:00 .. Friday 13:00
    assert (res.due_at, res.fraction, res.remaining, res.breached) == (None, None, None, False)
    assert sweep_status(rec.state, T0 + 1000 * H).breaches == ()


# -- bad input -----------------------------------------------------------------------------------


def test_future_events_are_deferred_not_clamped() -> None:
    """An event after now is ignored (and returned as deferred) until now reaches its time."""
    events = [ev(T0, "opened", 1), ev(T0 + 3 * H, "acknowledged", 2)]
    rec, snap = run(events, T0 + 2 * H)
    assert rec.deferred == (events[1],)
    assert [w.code for w in rec.warnings] == ["future_event"]
    assert snap.acknowledgment.status is MetricStatus.RUNNING
    assert snap.acknowledgment.elapsed == 2 * H
    _, later = run(events, T0 + 4 * H)
    assert later.acknowledgment.stopped_at == T0 + 3 * H
    assert later.acknowledgment.elapsed == 3 * H


def test_out_of_order_input_is_sorted_and_duplicates_ignored() -> None:
    """Input order does not matter; an event repeating the previous (at, seq) is ignored."""
    events = [
        ev(T0 + 2 * H, "ball", 3, "msp"),
        ev(T0 + 30 * M, "vendor_public_update", 2),
        ev(T0, "opened", 1),
        ev(T0 + 30 * M, "vendor_public_update", 2),
    ]
    rec, snap = run(events, T0 + 5 * H)
    ordered, _ = run(sorted(events[:3], key=lambda e: e.key), T0 + 5 * H)
    assert rec.state == ordered.state
    assert [w.code for w in rec.warnings] == ["duplicate_event"]
    assert snap.acknowledgment.elapsed == 30 * M


def test_odd_events_warn_and_are_ignored() -> None:
    """Events before 'opened' start the clock, bad ball values and stray reopens are ignored."""
    events = [
        ev(T0, "vendor_public_update", 1),
        ev(T0 + M, "opened", 2),
        ev(T0 + 2 * M, "ball", 3, "nobody"),
        ev(T0 + 3 * M, "reopened", 4),
        ev(T0 + 4 * M, "resolved", 5),
        ev(T0 + 5 * M, "resolved", 6),
        ev(T0 + 6 * M, "ball", 7, "vendor"),
    ]
    rec, snap = run(events, T0 + H)
    codes = [w.code for w in rec.warnings]
    assert codes == [
        "implicit_open",
        "duplicate_open",
        "bad_ball",
        "reopen_unresolved",
        "duplicate_resolved",
    ]
    assert snap.started_at == T0
    assert snap.acknowledgment.elapsed == ZERO
    assert snap.resolution.elapsed == 4 * M


def test_now_before_the_checkpoint_never_gives_negative_durations() -> None:
    """Evaluating a state before its last event clamps now to that event and warns."""
    rec, _ = run([ev(T0, "opened", 1), ev(T0 + H, "ball", 2, "msp")], T0 + 2 * H)
    snap = snapshot(rec.state, POLICY, T0)
    assert [w.code for w in snap.warnings] == ["now_before_checkpoint"]
    assert snap.now == T0 + H
    assert all(m.elapsed >= ZERO for m in snap.metrics)
    assert snap.resolution.elapsed == H


def test_naive_event_times_are_refused() -> None:
    """Source times must be aware; other zones are normalised to UTC."""
    with pytest.raises(ValueError, match="naive"):
        SlaEvent(datetime(2026, 1, 5, 9), EventKind.OPENED)
    plus_two = datetime(2026, 1, 5, 11, tzinfo=timezone(2 * H))
    normalised = SlaEvent(plus_two, EventKind.OPENED).at
    assert normalised.tzinfo is UTC
    assert normalised == T0


def test_advance_asks_for_repair_on_late_events_and_policy_change() -> None:
    """An event older than the checkpoint, or another policy, needs a full recompute."""
    state = repair([ev(T0, "opened", 1), ev(T0 + H, "ball", 2, "msp")], POLICY, T0 + H).state
    late = advance(state, [ev(T0 + 30 * M, "acknowledged", 3)], POLICY, T0 + 2 * H)
    assert late.needs_repair
    assert late.state is state
    other = ClockPolicy(calendar=CAL, acknowledgment=MetricPolicy(2 * H))
    changed = advance(state, [], other, T0 + 2 * H)
    assert changed.needs_repair
    assert [w.code for w in changed.warnings] == ["policy_changed"]
    same, warnings = apply(state, ev(T0 + 30 * M, "acknowledged", 3), POLICY)
    assert same is state
    assert [w.code for w in warnings] == ["out_of_order"]


def test_checkpoint_survives_a_json_round_trip() -> None:
    """to_dict/from_dict give back an equal state through JSON."""
    events = [
        ev(T0, "opened", 1),
        ev(T0 + 10 * M, "vendor_public_update", 2),
        ev(T0 + 2 * H, "ball", 3, "msp"),
        ev(T0 + 30 * H, "ball", 4, "vendor"),
    ]
    state = repair(events, POLICY, T0 + 40 * H).state
    assert SlaState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_policy_from_contract() -> None:
    """A contract's targets for a priority become the policy; an unknown priority has none."""
    contract = ContractConfig.model_validate(
        {
            "name": "acme",
            "vendor": "servicenow",
            "calendar": "utc",
            "targets": {
                1: {"acknowledgment": "15m", "resolution": {"duration": "4h", "business": False}}
            },
            "acknowledgment_by": "in_progress",
            "thresholds": [75, 50],
        }
    )
    policy = ClockPolicy.from_contract(contract, "1", CAL)
    assert policy.acknowledgment == MetricPolicy(15 * M, True)
    assert policy.resolution == MetricPolicy(4 * H, False)
    assert policy.update_cadence.target is None
    assert policy.thresholds == (50, 75)
    assert policy.acknowledgment_by == "in_progress"
    assert ClockPolicy.from_contract(contract, "9", CAL).acknowledgment.target is None
    assert policy.key != ClockPolicy.from_contract(contract, "9", CAL).key
    with pytest.raises(ValueError, match="acknowledgment_by"):
        ClockPolicy(calendar=CAL, acknowledgment_by="first_reply")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        ClockPolicy(calendar=CAL, resolution=MetricPolicy(ZERO))


# -- properties ------------------------------------------------------------------------------------

POLICIES = [
    ClockPolicy(
        calendar=CAL,
        acknowledgment=MetricPolicy(30 * M),
        update_cadence=MetricPolicy(2 * H),
        resolution=MetricPolicy(8 * H),
        thresholds=(50, 75, 100, 150),
    ),
    ClockPolicy(
        calendar=CAL,
        acknowledgment=MetricPolicy(H, business=False),
        update_cadence=MetricPolicy(3 * H),
        resolution=MetricPolicy(20 * H, business=False),
        acknowledgment_by="assigned",
    ),
]
KINDS = [k.value for k in EventKind] + ["ball", "ball", "vendor_public_update"]
BALLS = ["vendor", "msp", "client", "resolved", "vendor", "bogus"]
SPAN = 8 * 24 * 60  # minutes of history

raw_event = st.tuples(
    st.integers(min_value=0, max_value=SPAN),  # minute offset
    st.integers(min_value=0, max_value=59),  # second
    st.sampled_from(KINDS),
    st.sampled_from(BALLS),
    st.one_of(st.just(0), st.just(0), st.integers(min_value=0, max_value=3 * 24 * 60)),  # delay
)


def _events(raw: list[tuple[int, int, str, str, int]]) -> list[tuple[SlaEvent, datetime]]:
    out = []
    for seq, (minute, second, kind, ball, delay) in enumerate(raw):
        at = T0 + minute * M + second * timedelta(seconds=1)
        value = ball if kind == "ball" else None
        out.append((SlaEvent(at, EventKind(kind), seq, value), at + delay * M))
    return out


def _reference_resolution(
    events: Sequence[SlaEvent], policy: ClockPolicy, now: datetime
) -> timedelta:
    """Business time with the ball at the vendor between opening and resolution, directly."""
    cal = policy.basis(Metric.RESOLUTION)
    started, resolved, ball = False, False, Ball.VENDOR
    total, last = ZERO, None
    seen: set[tuple[datetime, int]] = set()
    for e in sorted((e for e in events if e.at <= now), key=lambda e: e.key):
        if e.key in seen:
            continue
        seen.add(e.key)
        if started and not resolved and ball is Ball.VENDOR and last is not None:
            total += cal.business_time_between(last, e.at)
        last = e.at
        if not started and e.kind is not EventKind.BALL:
            started = True
        if e.kind is EventKind.BALL and e.value in {b.value for b in Ball}:
            new = Ball(e.value or "")
            if started and new is not ball and new is Ball.RESOLVED and not resolved:
                resolved = True
            elif started and new is not ball and ball is Ball.RESOLVED and resolved:
                resolved = False
            ball = new
        elif e.kind is EventKind.RESOLVED:
            resolved = True
        elif e.kind is EventKind.REOPENED:
            resolved = False
    if started and not resolved and ball is Ball.VENDOR and last is not None:
        total += cal.business_time_between(last, now)
    return total


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=st.sampled_from(POLICIES),
    raw=st.lists(raw_event, max_size=24),
    now_minute=st.integers(min_value=0, max_value=SPAN + 24 * 60),
    ticks=st.lists(st.integers(min_value=0, max_value=SPAN + 24 * 60), max_size=6),
    shuffle_seed=st.integers(min_value=0, max_value=2**16),
)
def test_repair_equals_incremental(
    policy: ClockPolicy,
    raw: list[tuple[int, int, str, str, int]],
    now_minute: int,
    ticks: list[int],
    shuffle_seed: int,
) -> None:
    """Checkpoints advanced tick by tick (late, deferred and out-of-order arrivals included)
    end in exactly the state a full recompute gives; results are sane and the sweep agrees."""
    now = T0 + now_minute * M
    arrivals = _events(raw)
    tick_times = sorted({T0 + t * M for t in ticks if T0 + t * M < now} | {now})

    state = SlaState.initial(policy)
    known: list[SlaEvent] = []
    carry: list[SlaEvent] = []
    previous: datetime | None = None
    for tick in tick_times:
        batch = [e for e, arr in arrivals if (previous is None or arr > previous) and arr <= tick]
        known.extend(batch)
        result = advance(state, carry + batch, policy, tick)
        if result.needs_repair:
            rec = repair(known, policy, tick)
            state, carry = rec.state, list(rec.deferred)
        else:
            state, carry = result.state, list(result.deferred)
        previous = tick

    full = repair(known, policy, now)
    assert state == full.state

    shuffled = list(known)
    random.Random(shuffle_seed).shuffle(shuffled)
    assert repair(shuffled, policy, now).state == full.state

    snap = snapshot(state, policy, now)
    assert snap.resolution.elapsed == _reference_resolution(known, policy, now)
    for metric in snap.metrics:
        assert metric.elapsed >= ZERO
        assert metric.overdue >= ZERO
        assert metric.remaining is None or metric.remaining >= ZERO
        assert all(c.at <= now for c in metric.crossings)
        if metric.breached_at is not None:
            assert metric.breached_at <= now
    for pause in snap.pauses:
        assert pause.end is None or pause.start < pause.end
    for before, after in zip(snap.pauses, snap.pauses[1:], strict=False):
        assert before.end is not None
        assert before.end <= after.start

    assert elapsed_at(state, policy, now) == tuple(m.elapsed for m in snap.metrics)

    later = now + 7 * H
    status = sweep_status(state, later)
    evaluated = snapshot(state, policy, later)
    assert set(status.breached) == {m.metric for m in evaluated.metrics if m.breached}
    assert dict(status.breaches) == {
        m.metric: m.breach_count for m in evaluated.metrics if m.breach_count
    }
    for which, level in status.levels:
        assert evaluated.metrics[list(Metric).index(which)].level == level
