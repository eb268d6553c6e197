"""Ball-in-court derivation from vendor status, hold reason and PSA status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ticketbridge.sla.ball import (
    SERVICENOW_BALL_CONFIG,
    StatusObservation,
    derive_ball,
    events_from_observations,
    explain_ball,
    transition_events,
)
from ticketbridge.sla.calendar import CALENDAR_TIME
from ticketbridge.sla.clock import (
    ClockPolicy,
    EventKind,
    MetricStatus,
    SlaEvent,
    repair,
    snapshot,
)
from ticketbridge.sla.models import Ball, BallConfig

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "hold", "expected"),
    [
        ("New", None, Ball.VENDOR),
        ("In Progress", None, Ball.VENDOR),
        ("On Hold", "Awaiting Caller", Ball.MSP),
        ("on hold", "awaiting  caller", Ball.MSP),
        ("On Hold", "Awaiting Vendor", Ball.VENDOR),
        ("On Hold", "Awaiting Change", Ball.VENDOR),
        ("On Hold", None, Ball.VENDOR),
        ("Resolved", None, Ball.MSP),
        ("Closed", None, Ball.RESOLVED),
        ("Canceled", None, Ball.RESOLVED),
        ("3", "1", Ball.MSP),
        ("6", None, Ball.MSP),
        ("7", None, Ball.RESOLVED),
        (None, None, Ball.VENDOR),
    ],
)
def test_servicenow_defaults(status: str | None, hold: str | None, expected: Ball) -> None:
    """ServiceNow states (display values or choice codes) map to whose move it is."""
    assert derive_ball(SERVICENOW_BALL_CONFIG, status, hold) is expected


def test_first_matching_rule_wins_and_psa_status_can_decide() -> None:
    """Rules are tried in order; a PSA-status rule can hand a resolved ticket to the client."""
    config = BallConfig.model_validate(
        {
            "rules": [
                {"vendor_status": "Resolved", "psa_status": "Waiting Client", "ball": "client"},
                {"vendor_status": ["Resolved", "Closed"], "ball": "msp"},
            ],
            "default": "vendor",
        }
    )
    assert explain_ball(config, "Resolved", None, "Waiting Client") == (Ball.CLIENT, 0)
    assert explain_ball(config, "Resolved", None, "In Progress") == (Ball.MSP, 1)
    assert explain_ball(config, "closed", None, None) == (Ball.MSP, 1)
    assert explain_ball(config, "In Progress", None, None) == (Ball.VENDOR, None)


def test_transition_events_for_resolve_and_reopen() -> None:
    """Entering a resolved status emits ball + resolved; leaving it emits reopened + ball."""
    working = StatusObservation(T0, "In Progress")
    resolved = StatusObservation(T0 + H, "Resolved")
    closed = StatusObservation(T0 + 2 * H, "Closed")
    assert transition_events(SERVICENOW_BALL_CONFIG, None, working) == [(EventKind.BALL, "vendor")]
    assert transition_events(SERVICENOW_BALL_CONFIG, working, resolved) == [
        (EventKind.BALL, "msp"),
        (EventKind.RESOLVED, None),
    ]
    assert transition_events(SERVICENOW_BALL_CONFIG, resolved, working) == [
        (EventKind.REOPENED, None),
        (EventKind.BALL, "vendor"),
    ]
    assert transition_events(SERVICENOW_BALL_CONFIG, resolved, closed) == [
        (EventKind.BALL, "resolved")
    ]
    assert transition_events(SERVICENOW_BALL_CONFIG, working, working) == []


def test_events_from_observations_drive_the_clock() -> None:
    """Observations become ordered, unique events; the clock pauses on hold and stops on resolve."""
    observations = [
        StatusObservation(T0 + 3 * H, "Resolved", seq=4),
        StatusObservation(T0, "New", seq=1),
        StatusObservation(T0 + H, "On Hold", "Awaiting Caller", seq=2),
        StatusObservation(T0 + 2 * H, "In Progress", seq=3),
    ]
    events = events_from_observations(SERVICENOW_BALL_CONFIG, observations)
    assert [(e.at - T0, e.kind, e.value, e.seq) for e in events] == [
        (timedelta(0), EventKind.BALL, "vendor", 5),
        (H, EventKind.BALL, "msp", 9),
        (2 * H, EventKind.BALL, "vendor", 13),
        (3 * H, EventKind.BALL, "msp", 17),
        (3 * H, EventKind.RESOLVED, None, 18),
    ]
    history = [SlaEvent(T0, EventKind.OPENED, 0), *events]
    policy = ClockPolicy(calendar=CALENDAR_TIME)
    snap = snapshot(repair(history, policy, T0 + 5 * H).state, policy, T0 + 5 * H)
    assert snap.resolution.status is MetricStatus.STOPPED
    assert snap.resolution.elapsed == 2 * H
    assert snap.pauses[0].ball is Ball.MSP


def test_events_from_observations_continues_from_previous() -> None:
    """Passing the last observation already handled avoids repeating its ball event."""
    first = StatusObservation(T0, "In Progress", seq=1)
    again = StatusObservation(T0 + H, "In Progress", seq=2)
    assert events_from_observations(SERVICENOW_BALL_CONFIG, [again], previous=first) == []
