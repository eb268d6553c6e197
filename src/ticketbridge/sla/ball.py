"""Ball-in-court: whose move it is, derived from status observations.

A :class:`~ticketbridge.sla.models.BallConfig` is an ordered list of rules on
the vendor's status and status class and the PSA's status and status class;
the first rule that matches names the ball.  When none does, the vendor's
status class decides (:data:`~ticketbridge.sla.models.CLASS_BALLS`): new,
working and waiting on a third party -> vendor; waiting on the customer (the
MSP) -> MSP; resolved -> MSP (it verifies with its client); closed and
cancelled -> resolved.  Status matching ignores case and repeated whitespace.

:func:`events_from_observations` turns a series of observations into clock
events (:mod:`ticketbridge.sla.clock`): a ``ball`` event whenever the ball
changes, ``resolved`` when the vendor ticket becomes resolved
(:meth:`BallConfig.is_resolved`) and ``reopened`` when it stops being so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ticketbridge.domain import StatusClass
from ticketbridge.sla.clock import EventKind, SlaEvent
from ticketbridge.sla.models import Ball, BallConfig, SideStatus

__all__ = [
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
    vendor_class: StatusClass | None = None
    psa_status: str | None = None
    psa_class: StatusClass | None = None
    seq: int = 0

    @property
    def vendor(self) -> SideStatus:
        return SideStatus(self.vendor_status, self.vendor_class)

    @property
    def psa(self) -> SideStatus:
        return SideStatus(self.psa_status, self.psa_class)


def explain_ball(
    config: BallConfig, vendor: SideStatus, psa: SideStatus | None = None
) -> tuple[Ball, int | None]:
    """The ball and the index of the rule that decided it (``None``: no rule did)."""
    psa = psa or SideStatus()
    for i, rule in enumerate(config.rules):
        if rule.matches(vendor, psa):
            return rule.ball, i
    return config.default_for(vendor), None


def derive_ball(config: BallConfig, vendor: SideStatus, psa: SideStatus | None = None) -> Ball:
    """Whose move it is, by the first matching rule of ``config``, else by class."""
    return explain_ball(config, vendor, psa)[0]


def _ball_of(config: BallConfig, obs: StatusObservation) -> Ball:
    return derive_ball(config, obs.vendor, obs.psa)


def transition_events(
    config: BallConfig, previous: StatusObservation | None, current: StatusObservation
) -> list[tuple[EventKind, str | None]]:
    """The clock events one new observation implies, in order: reopened, ball, resolved."""
    out: list[tuple[EventKind, str | None]] = []
    was_resolved = previous is not None and config.is_resolved(previous.vendor)
    is_resolved = config.is_resolved(current.vendor)
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
