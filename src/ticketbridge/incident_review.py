"""Post-incident reviews as documents: lessons learned and breach investigations.

A lessons-learned record (opened by a rule when a ticket closes after a breach or an
escalation) and a breach investigation (opened by each supplier SLA breach) are rows; the
people who run the review need a document: what happened when (UTC), the vendor's
acknowledgment, update and resolution times against the contract, the escalations taken,
how long the ball sat with each party, and a checklist of owned, dated actions to prevent,
detect and mitigate the next one.  :func:`build_review` makes that document from the link's
timeline (:mod:`ticketbridge.timeline`) and its supplier SLA clock; :func:`render` writes it
as Markdown, HTML (autoescaped) or the plain text of the internal PSA note.

Product-neutral: the words come from the store and the configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import jinja2
from sqlalchemy.engine import Connection

from ticketbridge.config import TicketBridgeConfig
from ticketbridge.duration import format_span as format_duration
from ticketbridge.sla.clock import ClockPolicy, Metric, SlaState, snapshot
from ticketbridge.sla.models import select_contract
from ticketbridge.store.rows import LinkRow
from ticketbridge.store.timeline import (
    InvestigationRow,
    LessonRow,
    LinkHistory,
    close_investigation,
    close_lesson,
    get_investigation,
    get_lesson,
    link_history,
)
from ticketbridge.timeline import Entry, from_history

__all__ = [
    "ACTION_OWNERS",
    "Action",
    "MetricResult",
    "PolicyLookup",
    "Review",
    "ReviewIdError",
    "build_review",
    "close_review",
    "format_duration",
    "parse_review_id",
    "policy_lookup",
    "render",
]

#: Who owns each kind of follow-up, and in how many days it is due after the review opens.
#: Roles, not people: the review meeting names the person and closes the review.
ACTION_OWNERS: dict[str, tuple[str, int]] = {
    "prevent": ("vendor manager", 14),
    "detect": ("service desk lead", 7),
    "mitigate": ("account manager", 3),
}

#: Timeline kinds that belong in "what happened when" (notes we suppressed as echoes and
#: the routine writes are in ``ticketbridge timeline``, not in the review).
_STORY_KINDS = frozenset(
    {
        "link_created",
        "watch_started",
        "vendor_ticket_created",
        "vendor_ticket_seen",
        "status_changed",
        "priority_changed",
        "vendor_assigned",
        "note_mirrored",
        "note_dead",
        "sla_clock_started",
        "sla_clock_paused",
        "sla_clock_resumed",
        "sla_at_risk",
        "sla_overdue",
        "sla_breached",
        "sla_acknowledged",
        "sla_resolved",
        "rule_escalated",
        "rule_action_failed",
        "dead_letter",
        "breach_investigation_opened",
        "lessons_learned_opened",
        "link_closed",
    }
)

_LABELS = {
    "acknowledgment": "Acknowledgment",
    "update_cadence": "Update cadence (longest silence)",
    "resolution": "Resolution",
}

#: A link's supplier SLA policy (contract name and targets), or ``None`` without a contract.
PolicyLookup = Callable[[LinkRow], tuple[str, ClockPolicy] | None]


class ReviewIdError(ValueError):
    """A review id that names no review; the message says what ids look like."""


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One supplier SLA metric against the contract.  ``elapsed`` is vendor time (the
    clock runs only while the ball is with the vendor, in the contract's time basis);
    ``met`` is ``None`` when there is no target or the metric is still running."""

    metric: str
    label: str
    target: timedelta | None
    business: bool | None
    started_at: datetime | None
    stopped_at: datetime | None
    elapsed: timedelta | None
    breaches: int
    met: bool | None

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "no target" if self.target is None else "open"
        return "met" if self.met else "MISSED"


@dataclass(frozen=True, slots=True)
class Action:
    """A follow-up of the review: what, which area, who owns it, by when."""

    area: str
    what: str
    owner: str
    due: date
    done: bool = False


@dataclass(frozen=True)
class Review:
    """A post-incident review document (see the module's docstring)."""

    id: str
    kind: str
    title: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    findings: str | None
    link: LinkRow
    contract: str | None
    priority: str | None
    started_at: datetime | None
    resolved_at: datetime | None
    closed_link_at: datetime | None
    story: list[Entry]
    metrics: list[MetricResult]
    escalations: list[Entry]
    ball: list[tuple[str, timedelta]]
    investigations: list[InvestigationRow]
    actions: list[Action] = field(default_factory=list)

    @property
    def psa_ticket(self) -> str:
        return self.link.psa_number or self.link.psa_ticket_id

    @property
    def vendor_ticket(self) -> str:
        return self.link.vendor_number or self.link.vendor_ticket_id or "-"


# -- ids -------------------------------------------------------------------------------
def parse_review_id(text: str) -> tuple[str, int]:
    """``LL-3`` (lessons learned) or ``BI-2`` (breach investigation): its kind and row id."""
    head, _, number = text.strip().upper().partition("-")
    kinds = {"LL": "lessons_learned", "BI": "breach_investigation"}
    if head not in kinds or not number.isdigit():
        raise ReviewIdError(
            f"{text!r} is not a review id: give LL-<n> for a lessons-learned review or "
            "BI-<n> for a breach investigation, as `ticketbridge reviews list` shows them"
        )
    return kinds[head], int(number)


def close_review(
    conn: Connection, review_id: str, *, now: datetime, findings: str | None
) -> bool | None:
    """Close the open review ``LL-<n>``/``BI-<n>`` with what its meeting found: True when
    closed, False when it was closed already, ``None`` when there is no such review."""
    kind, row_id = parse_review_id(review_id)
    if kind == "lessons_learned":
        if get_lesson(conn, row_id) is None:
            return None
        return close_lesson(conn, row_id, now=now, findings=findings)
    if get_investigation(conn, row_id) is None:
        return None
    return close_investigation(conn, row_id, now=now, findings=findings)


# -- policy ----------------------------------------------------------------------------
def policy_lookup(config: TicketBridgeConfig) -> PolicyLookup:
    """The contract and clock policy a link is measured against under ``config``."""
    contracts = list(config.sla.contracts)
    calendars = config.sla.build_calendars() if contracts else {}

    def lookup(link: LinkRow) -> tuple[str, ClockPolicy] | None:
        contract = select_contract(contracts, link.vendor_system, link.company)
        if contract is None or contract.calendar not in calendars:
            return None
        policy = ClockPolicy.from_contract(
            contract, link.vendor_priority, calendars[contract.calendar]
        )
        return contract.name, policy

    return lookup


# -- building --------------------------------------------------------------------------
def build_review(
    conn: Connection,
    review_id: str,
    *,
    now: datetime,
    policy: PolicyLookup | None = None,
) -> Review | None:
    """The review ``LL-<n>``/``BI-<n>`` as a document, or ``None`` when there is none.

    ``policy`` gives the contract's targets (and running clocks their elapsed time at
    ``now``); without it the targets of the breach investigations are used."""
    kind, row_id = parse_review_id(review_id)
    record: LessonRow | InvestigationRow | None
    if kind == "lessons_learned":
        record = get_lesson(conn, row_id)
    else:
        record = get_investigation(conn, row_id)
    if record is None:
        return None
    history = link_history(conn, record.link_id)
    if history is None:
        return None
    return review_of(history, record, now=now, policy=policy)


def review_of(
    history: LinkHistory,
    record: LessonRow | InvestigationRow,
    *,
    now: datetime,
    policy: PolicyLookup | None = None,
) -> Review:
    """The review document of ``record`` from its link's stored story."""
    link = history.link
    timeline = from_history(history)
    closed_at = next((e.at for e in reversed(timeline) if e.kind == "link_closed"), None)
    found = policy(link) if policy is not None and history.clock is not None else None
    metrics, started_at, resolved_at, ball = _clock_facts(history, found, closed_at or now, now)
    escalations = [e for e in timeline if e.kind in ("rule_escalated", "sla_breached")]
    if isinstance(record, LessonRow):
        review_id, kind = f"LL-{record.id}", "lessons_learned"
        summary = record.summary
        title = (
            summary
            if summary.lower().startswith("lessons learned")
            else (f"Lessons learned: {summary}")
        )
        findings = record.findings
    else:
        review_id, kind = f"BI-{record.id}", "breach_investigation"
        title = (
            f"Service level breach investigation: {record.metric.replace('_', ' ')} "
            f"target missed on {record.vendor_ticket or link.vendor_ticket_id}"
        )
        findings = record.findings
    contract = found[0] if found else (history.clock.contract if history.clock else None)
    review = Review(
        id=review_id,
        kind=kind,
        title=title,
        state=record.state,
        opened_at=record.opened_at,
        closed_at=record.closed_at,
        findings=findings,
        link=link,
        contract=contract,
        priority=history.clock.priority if history.clock else link.vendor_priority,
        started_at=started_at,
        resolved_at=resolved_at,
        closed_link_at=closed_at,
        story=[e for e in timeline if e.kind in _STORY_KINDS],
        metrics=metrics,
        escalations=escalations,
        ball=ball,
        investigations=list(history.investigations),
    )
    return _with_actions(review)


def _clock_facts(
    history: LinkHistory,
    found: tuple[str, ClockPolicy] | None,
    until: datetime,
    now: datetime,
) -> tuple[list[MetricResult], datetime | None, datetime | None, list[tuple[str, timedelta]]]:
    """Each metric against its target, when the clock started and the vendor resolved,
    and the time the ball sat with each party from the clock's start to ``until``."""
    clock = history.clock
    if clock is None:
        return [], None, None, []
    state = SlaState.from_dict(clock.state)
    targets = {i.metric: i for i in history.investigations}
    results: list[MetricResult] = []
    snap = snapshot(state, found[1], now) if found is not None else None
    for metric in Metric:
        m = state.metric(metric)
        target: timedelta | None
        business: bool | None
        elapsed: timedelta | None
        if snap is not None:
            ms = next(s for s in snap.metrics if s.metric is metric)
            target, business = ms.target, ms.business
            elapsed = ms.max_elapsed if metric is Metric.UPDATE_CADENCE else ms.elapsed
            breaches = ms.breach_count
        else:
            inv = targets.get(metric.value)
            target = (
                timedelta(seconds=inv.target_seconds)
                if inv is not None and inv.target_seconds is not None
                else None
            )
            business = inv.business if inv is not None else None
            longest = max(m.max_elapsed, m.elapsed)
            elapsed = longest if metric is Metric.UPDATE_CADENCE else m.elapsed
            breaches = m.breach_count
        if m.started_at is None:
            elapsed = None
        finished = m.stopped_at is not None or metric is Metric.UPDATE_CADENCE
        met: bool | None = None
        if breaches:
            met = False
        elif target is not None and finished and elapsed is not None:
            met = elapsed <= target
        results.append(
            MetricResult(
                metric=metric.value,
                label=_LABELS[metric.value],
                target=target,
                business=business,
                started_at=m.started_at,
                stopped_at=m.stopped_at,
                elapsed=elapsed,
                breaches=breaches,
                met=met,
            )
        )
    return results, state.started_at, state.resolved_at, _ball_times(state, until)


def _ball_times(state: SlaState, until: datetime) -> list[tuple[str, timedelta]]:
    """Calendar time with each party between the clock's start and ``until``: the pauses
    say who held the ball; the rest of the time it was the vendor's."""
    if state.started_at is None or until <= state.started_at:
        return []
    # once the vendor resolved, the MSP verifies with its client: the MSP's move
    resolved = state.resolved_at if state.resolved_at and state.resolved_at < until else None
    open_until = resolved or until
    totals: dict[str, timedelta] = {}
    paused = timedelta(0)
    for pause in state.pauses:
        start = max(pause.start, state.started_at)
        end = min(pause.end or open_until, open_until)
        if end <= start:
            continue
        party = pause.ball.value
        totals[party] = totals.get(party, timedelta(0)) + (end - start)
        paused += end - start
    totals["vendor"] = open_until - state.started_at - paused
    if resolved is not None:
        totals["msp"] = totals.get("msp", timedelta(0)) + (until - resolved)
    order = ["vendor", "msp", "client", "resolved"]
    return [(party, totals[party]) for party in order if party in totals]


def _with_actions(review: Review) -> Review:
    """The review checklist: one owned, dated action per area at least, more where the
    incident shows the need (a missed target, an escalation, a dead letter)."""
    base = review.opened_at.date()

    def action(area: str, what: str) -> Action:
        owner, days = ACTION_OWNERS[area]
        return Action(area, what, owner, base + timedelta(days=days), review.state == "closed")

    vendor = review.vendor_ticket
    missed = [m for m in review.metrics if m.met is False]
    actions: list[Action] = []
    for m in missed:
        words = m.label.split(" (")[0].lower()
        actions.append(
            action(
                "prevent",
                f"Raise the missed {words} target ({format_duration(m.target)}, "
                f"took {format_duration(m.elapsed)} of vendor time) with the vendor on "
                f"{vendor}: their root cause and what they change",
            )
        )
    if not missed:
        actions.append(
            action(
                "prevent",
                f"Ask the vendor what would have solved {vendor} without escalation",
            )
        )
    at_risk = [e for e in review.story if e.kind == "sla_at_risk"]
    detect = (
        f"Check the {len(at_risk)} at-risk warning(s) reached the engineer in time, and "
        "whether an earlier threshold would have helped"
        if at_risk
        else "Check the at-risk thresholds of the contract warn early enough"
    )
    actions.append(action("detect", detect))
    if any(e.kind == "dead_letter" for e in review.story):
        actions.append(action("detect", "Find why a write was dead-lettered and fix its cause"))
    escalated = sorted(
        {str(e.detail.get("rule")) for e in review.escalations if e.detail.get("rule")}
    )
    mitigate = (
        "Confirm the client was kept informed while the escalations ("
        + ", ".join(escalated)
        + ") ran, and agree the workaround for next time"
        if escalated
        else "Confirm the client was kept informed and agree the workaround for next time"
    )
    actions.append(action("mitigate", mitigate))
    order = {"prevent": 0, "detect": 1, "mitigate": 2}
    actions.sort(key=lambda a: order[a.area])
    return replace(review, actions=actions)


# -- rendering -------------------------------------------------------------------------
@functools.cache
def _environment() -> jinja2.Environment:
    """The templates' environment, made once."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ticketbridge", "templates"),
        # HTML is escaped (a note's text is anybody's words); Markdown and text are not
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["duration"] = format_duration
    env.filters["utc"] = _utc
    env.filters["cell"] = _cell
    env.filters["seconds"] = lambda value: timedelta(seconds=float(value))
    env.filters["parties"] = _parties
    return env


def _utc(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _parties(ball: list[tuple[str, timedelta]]) -> str:
    """``vendor 30m 10s, msp 11m 05s``; ``-`` when there is no clock."""
    return ", ".join(f"{party} {format_duration(spent)}" for party, spent in ball) or "-"


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


#: ``render`` formats: Markdown, HTML, and the plain text written back to the PSA.
FORMATS = {"md": "review.md", "html": "review.html", "text": "review.txt"}


def render(review: Review, fmt: str) -> str:
    """The review as ``md``, ``html`` or ``text`` (the internal PSA note)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown review format {fmt!r}: one of {', '.join(FORMATS)}")
    return _environment().get_template(FORMATS[fmt]).render(r=review)
