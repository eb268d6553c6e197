"""Ball-in-court: whose move it is, derived from status observations.

A :class:`~ticketbridge.sla.models.BallConfig` is an ordered list of rules on
the vendor status, the vendor's hold reason and the PSA status; the first rule
that matches names the ball, else its ``default`` (the vendor).  Matching
ignores case and repeated whitespace.

:data:`SERVICENOW_BALL_CONFIG` encodes ServiceNow as the vendor, with the MSP
as the caller: New / In Progress -> vendor; On Hold awaiting the caller ->
MSP; On Hold awaiting a change, problem or the vendor's own supplier ->
vendor; Resolved -> MSP (it verifies with its client); Closed / Canceled ->
resolved.  Display values and the out-of-the-box choice codes both match.

:func:`events_from_observations` turns a series of observations into clock
events (:mod:`ticketbridge.sla.clock`): a ``ball`` event whenever the ball
changes, ``resolved`` when the vendor status enters one of the config's
``resolved_statuses`` and ``reopened`` when it leaves them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ticketbridge.sla.clock import EventKind, SlaEvent
from ticketbridge.sla.models import Ball, BallConfig, BallRule

__all__ = [
    "SERVICENOW_BALL_CONFIG",
    "StatusObservation",
    "derive_ball",
    "events_from_observations",
    "explain_ball",
    "transition_events",
]


@dataclass(frozen=True, slots=True)
class StatusObservation:
    """Statuses seen at ``at`` (source-system time); ``seq`` orders equal times."""

    at: datetime
    vendor_status: str | None
    hold_reason: str | None = None
    psa_status: str | None = None
    seq: int = 0


SERVICENOW_BALL_CONFIG = BallConfig(
    rules=(
        BallRule(vendor_status=("Closed", "Canceled", "Cancelled", "7", "8"), ball=Ball.RESOLVED),
        BallRule(vendor_status=("Resolved", "6"), ball=Ball.MSP),
        BallRule(
            vendor_status=("On Hold", "3"), hold_reason=("Awaiting Caller", "1"), ball=Ball.MSP
        ),
    ),
    default=Ball.VENDOR,
    resolved_statuses=("Resolved", "Closed", "Canceled", "Cancelled", "6", "7", "8"),
    in_progress_statuses=("In Progress", "2"),
)


def explain_ball(
    config: BallConfig,
    vendor_status: str | None,
    hold_reason: str | None = None,
    psa_status: str | None = None,
) -> tuple[Ball, int | None]:
    """The ball and the index of the rule that decided it (``None``: the default)."""
    for i, rule in enumerate(config.rules):
        if rule.matches(vendor_status, hold_reason, psa_status):
            return rule.ball, i
    return config.default, None


def derive_ball(
    config: BallConfig,
    vendor_status: str | None,
    hold_reason: str | None = None,
    psa_status: str | None = None,
) -> Ball:
    """Whose move it is, by the first matching rule of ``config``."""
    return explain_ball(config, vendor_status, hold_reason, psa_status)[0]


def _ball_of(config: BallConfig, obs: StatusObservation) -> Ball:
    return derive_ball(config, obs.vendor_status, obs.hold_reason, obs.psa_status)


def transition_events(
    config: BallConfig, previous: StatusObservation | None, current: StatusObservation
) -> list[tuple[EventKind, str | None]]:
    """The clock events one new observation implies, in order: reopened, ball, resolved."""
    out: list[tuple[EventKind, str | None]] = []
    was_resolved = previous is not None and config.is_resolved_status(previous.vendor_status)
    is_resolved = config.is_resolved_status(current.vendor_status)
    if was_resolved and not is_resolved:
        out.append((EventKind.REOPENED, None))
    ball = _ball_of(config, current)
    if previous is None or _ball_of(config, previous) is not ball:
        out.append((EventKind.BALL, ball.value))
    if is_resolved and not was_resolved:
        out.append((EventKind.RESOLVED, None))
    return out


def events_from_observations(
    config: BallConfig,
    observations: Iterable[StatusObservation],
    *,
    previous: StatusObservation | None = None,
) -> list[SlaEvent]:
    """Clock events for a series of observations (sorted by ``(at, seq)`` first).

    ``previous`` is the last observation already turned into events, if any.
    Events get ``seq = observation.seq * 4 + k`` (k = 0 reopened, 1 ball,
    2 resolved) so they keep the observation's order and stay unique.
    """
    order = {EventKind.REOPENED: 0, EventKind.BALL: 1, EventKind.RESOLVED: 2}
    events: list[SlaEvent] = []
    for obs in sorted(observations, key=lambda o: (o.at, o.seq)):
        for kind, value in transition_events(config, previous, obs):
            events.append(SlaEvent(obs.at, kind, obs.seq * 4 + order[kind], value))
        previous = obs
    return events
