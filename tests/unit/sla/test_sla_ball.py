"""Ball-in-court derivation from the vendor's and the PSA's statuses and status classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ticketbridge.domain import StatusClass
from ticketbridge.sla.ball import (
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
from ticketbridge.sla.models import Ball, BallConfig, SideStatus

BY_CLASS = BallConfig()

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("status_class", "expected"),
    [
        (StatusClass.NEW, Ball.VENDOR),
        (StatusClass.WORKING, Ball.VENDOR),
        (StatusClass.WAITING_ON_THIRD_PARTY, Ball.VENDOR),
        (StatusClass.WAITING_ON_CUSTOMER, Ball.MSP),
        (StatusClass.RESOLVED, Ball.MSP),
        (StatusClass.CLOSED, Ball.RESOLVED),
        (StatusClass.CANCELLED, Ball.RESOLVED),
        (None, Ball.VENDOR),
    ],
)
def test_the_vendor_class_decides_by_default(
    status_class: StatusClass | None, expected: Ball
) -> None:
    """Without rules the vendor ticket's status class says whose move it is."""
    assert expected is derive_ball(BY_CLASS, SideStatus("Anything", status_class))


def test_an_explicit_default_overrides_the_classes() -> None:
    """``default`` set: it applies whatever the class when no rule matches."""
    config = BallConfig(default=Ball.VENDOR)
    assert Ball.VENDOR is derive_ball(config, vendor("Resolved", StatusClass.RESOLVED))


def vendor(status: str | None, status_class: StatusClass | None = None) -> SideStatus:
    return SideStatus(status, status_class)


def test_class_rules_match_either_side() -> None:
    """vendor_class / psa_class rules match the classes, together with status rules."""
    config = BallConfig.model_validate(
        {
            "rules": [
                {
                    "vendor_class": "waiting_on_customer",
                    "psa_class": "waiting_on_customer",
                    "ball": "client",
                },
                {"vendor_class": ["working", "new"], "psa_status": "Vendor Hold", "ball": "msp"},
            ]
        }
    )
    waiting = vendor("On Hold", StatusClass.WAITING_ON_CUSTOMER)
    assert explain_ball(
        config, waiting, SideStatus("Waiting", StatusClass.WAITING_ON_CUSTOMER)
    ) == (
        Ball.CLIENT,
        0,
    )
    assert explain_ball(config, waiting, SideStatus("New", StatusClass.NEW)) == (Ball.MSP, None)
    working = vendor("In Progress", StatusClass.WORKING)
    assert explain_ball(config, working, SideStatus("vendor  hold")) == (Ball.MSP, 1)
    assert explain_ball(config, working, None) == (Ball.VENDOR, None)


def test_an_unknown_class_in_a_rule_is_refused() -> None:
    """A class name that does not exist is a configuration error."""
    with pytest.raises(ValueError, match="vendor_class"):
        BallConfig.model_validate({"rules": [{"vendor_class": "on_hold", "ball": "msp"}]})


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
    resolved = vendor("Resolved")
    assert explain_ball(config, resolved, SideStatus("Waiting Client")) == (Ball.CLIENT, 0)
    assert explain_ball(config, resolved, SideStatus("In Progress")) == (Ball.MSP, 1)
    assert explain_ball(config, vendor("closed")) == (Ball.MSP, 1)
    assert explain_ball(config, vendor("In Progress")) == (Ball.VENDOR, None)


def test_transition_events_for_resolve_and_reopen() -> None:
    """Entering a resolved class emits ball + resolved; leaving it emits reopened + ball."""
    working = StatusObservation(T0, "In Progress", StatusClass.WORKING)
    resolved = StatusObservation(T0 + H, "Resolved", StatusClass.RESOLVED)
    closed = StatusObservation(T0 + 2 * H, "Closed", StatusClass.CLOSED)
    assert transition_events(BY_CLASS, None, working) == [(EventKind.BALL, "vendor")]
    assert transition_events(BY_CLASS, working, resolved) == [
        (EventKind.BALL, "msp"),
        (EventKind.RESOLVED, None),
    ]
    assert transition_events(BY_CLASS, resolved, working) == [
        (EventKind.REOPENED, None),
        (EventKind.BALL, "vendor"),
    ]
    assert transition_events(BY_CLASS, resolved, closed) == [(EventKind.BALL, "resolved")]
    assert transition_events(BY_CLASS, working, working) == []


def test_events_from_observations_drive_the_clock() -> None:
    """Observations become ordered, unique events; the clock pauses on hold and stops on resolve."""
    observations = [
        StatusObservation(T0 + 3 * H, "Resolved", StatusClass.RESOLVED, seq=4),
        StatusObservation(T0, "New", StatusClass.NEW, seq=1),
        StatusObservation(T0 + H, "On Hold", StatusClass.WAITING_ON_CUSTOMER, seq=2),
        StatusObservation(T0 + 2 * H, "In Progress", StatusClass.WORKING, seq=3),
    ]
    events = events_from_observations(BY_CLASS, observations)
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
    first = StatusObservation(T0, "In Progress", StatusClass.WORKING, seq=1)
    again = StatusObservation(T0 + H, "In Progress", StatusClass.WORKING, seq=2)
    assert events_from_observations(BY_CLASS, [again], previous=first) == []


def test_resolved_and_in_progress_statuses_override_the_classes() -> None:
    """Listed statuses decide resolved / in progress; without them the classes do."""
    listed = BallConfig(resolved_statuses=("Done",), in_progress_statuses=("Busy",))
    done = vendor("done", StatusClass.WORKING)
    busy = vendor("Busy", StatusClass.NEW)
    assert (True, True, False, True) == (
        listed.is_resolved(done),
        listed.is_in_progress(busy),
        BY_CLASS.is_resolved(done),
        BY_CLASS.is_in_progress(done),
    )
    cancelled = vendor("Canceled", StatusClass.CANCELLED)
    assert (True, False) == (BY_CLASS.is_resolved(cancelled), BY_CLASS.is_in_progress(busy))
