"""Scorecard aggregation: percentiles, compliance, breaches, grouping."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketbridge.sla.calendar import CALENDAR_TIME
from ticketbridge.sla.clock import ClockPolicy, EventKind, MetricPolicy, SlaEvent, repair, snapshot
from ticketbridge.sla.kpi import ALL_PRIORITIES, LinkOutcome, median, percentile, scorecard

M = timedelta(minutes=1)
H = timedelta(hours=1)


def test_percentiles_interpolate_between_ranks() -> None:
    """Median of an even count is the mean of the middle two; p90 interpolates."""
    values = [10 * M, 20 * M, 30 * M, 40 * M]
    assert median(values) == 25 * M
    assert percentile(values, 90) == 37 * M
    assert percentile(values, 0) == 10 * M
    assert percentile(values, 100) == 40 * M
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="outside"):
        percentile(values, 101)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=30))
def test_percentile_agrees_with_statistics_quantiles(minutes: list[int]) -> None:
    """p10..p90 equal statistics.quantiles(method='inclusive') to the microsecond."""
    values = [timedelta(microseconds=v) for v in minutes]
    expected = statistics.quantiles(minutes, n=10, method="inclusive")
    for i, want in enumerate(expected, start=1):
        got = percentile(values, 10 * i)
        assert got is not None
        assert abs(got - timedelta(microseconds=want)) <= timedelta(microseconds=1)


def test_scorecard_rows_per_vendor_and_priority() -> None:
    """Rows group by (vendor, priority) in natural order and add up breaches and counts."""
    outcomes = [
        LinkOutcome("servicenow", "1", "ACME", ack=10 * M, resolution=2 * H),
        LinkOutcome(
            "servicenow",
            "1",
            "ACME",
            ack=30 * M,
            resolution=6 * H,
            ack_breached=True,
            cadence_breaches=2,
            breach_minutes=95.5,
            escalations=1,
            reopens=1,
        ),
        LinkOutcome("servicenow", "1", "Globex", ack=20 * M, resolution=None),
        LinkOutcome("servicenow", "10", "ACME", ack=5 * M, resolution=H),
        LinkOutcome("servicenow", "2", "ACME", ack=None, resolution=None, resolution_breached=True),
        LinkOutcome("jira", "High", "ACME", ack=M),
    ]
    rows = scorecard(outcomes)
    assert [(r.vendor, r.priority) for r in rows] == [
        ("jira", "High"),
        ("servicenow", "1"),
        ("servicenow", "2"),
        ("servicenow", "10"),
    ]
    p1 = rows[1]
    assert p1.tickets == 3
    assert p1.ack_median == 20 * M
    assert p1.ack_p90 == 28 * M
    assert p1.resolution_median == 4 * H
    assert p1.compliance_pct == pytest.approx(200 / 3)
    assert (p1.breach_count, p1.breach_minutes, p1.escalations, p1.reopens) == (3, 95.5, 1, 1)
    p2 = rows[2]
    assert (p2.ack_median, p2.resolution_p90, p2.compliance_pct) == (None, None, 0.0)


def test_scorecard_client_filter_and_totals() -> None:
    """clients keeps only those clients' links; totals adds an 'all' row per vendor."""
    outcomes = [
        LinkOutcome("servicenow", "1", "ACME", ack=10 * M),
        LinkOutcome("servicenow", "2", "ACME", ack=30 * M),
        LinkOutcome("servicenow", "2", "Globex", ack=50 * M),
    ]
    rows = scorecard(outcomes, clients={"ACME"}, totals=True)
    assert [(r.priority, r.tickets) for r in rows] == [("1", 1), ("2", 1), (ALL_PRIORITIES, 2)]
    assert rows[-1].ack_median == 20 * M
    assert scorecard([]) == []


def test_outcome_from_snapshot() -> None:
    """A link's clocks become an outcome: durations only when stopped, overdue in minutes."""
    t0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
    policy = ClockPolicy(
        calendar=CALENDAR_TIME,
        acknowledgment=MetricPolicy(15 * M),
        resolution=MetricPolicy(H),
    )
    events = [
        SlaEvent(t0, EventKind.OPENED, 1),
        SlaEvent(t0 + 20 * M, EventKind.ACKNOWLEDGED, 2),
        SlaEvent(t0 + 50 * M, EventKind.RESOLVED, 3),
        SlaEvent(t0 + 2 * H, EventKind.REOPENED, 4),
    ]
    now = t0 + 3 * H
    snap = snapshot(repair(events, policy, now).state, policy, now)
    outcome = LinkOutcome.from_snapshot(
        snap, vendor="servicenow", priority="1", client="ACME", escalations=2
    )
    assert outcome.ack == 20 * M
    assert outcome.resolution is None  # reopened and running again
    assert outcome.ack_breached
    assert outcome.resolution_breached
    assert outcome.breach_minutes == pytest.approx(5 + 50)
    assert (outcome.reopens, outcome.escalations, outcome.breaches) == (1, 2, 2)
