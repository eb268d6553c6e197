"""The closeout report for the deactivation session (MSP 11a.04), in Markdown and HTML.

What it says: the client's tickets completed versus cancelled, the vendor tickets closed,
anything still open and why, the supplier-SLA scorecard of the client's whole tenure (the
same numbers as ``ticketbridge sla report --client``), and the closeout KPIs:

* **deactivation issues**: tickets of the closeout that did not close cleanly -- a vendor
  that refused a closing write or never confirmed, or a closing write that needed more than
  one attempt;
* **client retention rate**: of every client ever linked, the share never closed out;
* **client return rate**: of the closed-out clients, the share that came back (a new linked
  ticket after the closeout was done), and this client's returns.

Templates are Jinja2 files under ``templates/``; the HTML one is rendered with autoescape,
so nothing a ticket says can inject markup.  Missing figures show as "—", never as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.closeout import FINISHED, Disposition, ReviewedTicket, review_in, write_keys
from ticketbridge.config import TicketBridgeConfig
from ticketbridge.duration import format_duration
from ticketbridge.report import collect
from ticketbridge.sla.kpi import ScorecardRow
from ticketbridge.store import Store
from ticketbridge.store import closeout as co_store
from ticketbridge.store.closeout import CloseoutRow

__all__ = ["CloseoutReport", "build_report", "render_html", "render_markdown"]

#: How a missing figure is shown.
MISSING = "—"
_TEMPLATES = Path(__file__).parent / "templates"
#: The start of "the whole tenure" when a client has no link: the scorecard's since.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TicketLine:
    """One ticket of the closeout as the report shows it."""

    psa_ticket: str
    summary: str
    vendor: str
    vendor_ticket: str
    disposition: str
    outcome: str
    vendor_status: str
    reason: str
    issue: str | None


@dataclass(frozen=True)
class CloseoutReport:
    """Everything the report shows, as plain values."""

    client: str
    generated_at: datetime
    closeout: CloseoutRow | None
    tickets: list[TicketLine]
    completed: int
    cancelled: int
    vendor_closed: int
    still_open: list[TicketLine]
    issues: list[TicketLine]
    scorecard: list[dict[str, str]]
    tenure_since: datetime | None
    clients_linked: int
    clients_closed_out: int
    clients_returned: int
    returns: list[dict[str, str]]

    @property
    def retention_rate(self) -> str:
        if not self.clients_linked:
            return MISSING
        kept = self.clients_linked - self.clients_closed_out
        return f"{100.0 * kept / self.clients_linked:.1f} %"

    @property
    def return_rate(self) -> str:
        if not self.clients_closed_out:
            return MISSING
        return f"{100.0 * self.clients_returned / self.clients_closed_out:.1f} %"


def _duration(value: timedelta | None) -> str:
    return MISSING if value is None else format_duration(value)


def _scorecard_cells(row: ScorecardRow) -> dict[str, str]:
    return {
        "vendor": row.vendor,
        "priority": row.priority,
        "tickets": str(row.tickets),
        "no_target": str(row.no_target),
        "acknowledged": str(row.acknowledged),
        "resolved": str(row.resolved),
        "ack_median": _duration(row.ack_median),
        "resolution_median": _duration(row.resolution_median),
        "compliance": MISSING if row.compliance_pct is None else f"{row.compliance_pct:.1f} %",
        "breaches": MISSING if row.breach_count is None else str(row.breach_count),
        "breach_minutes": MISSING if row.breach_minutes is None else f"{row.breach_minutes:.0f}",
        "escalations": str(row.escalations),
    }


def _line(ticket: ReviewedTicket, attempts: int, dead: bool) -> TicketLine:
    outcome = ticket.outcome
    state = "not in the closeout" if outcome is None else outcome.state
    issue = None
    if outcome is not None and outcome.state not in FINISHED:
        issue = outcome.reason or state
    elif dead or attempts > 1:
        issue = f"closing writes needed {attempts} attempts"
    return TicketLine(
        psa_ticket=ticket.psa_ticket,
        summary=ticket.summary,
        vendor=ticket.link.vendor_system if ticket.link.vendor_ticket_id else MISSING,
        vendor_ticket=ticket.vendor_ticket or MISSING,
        disposition=MISSING if outcome is None else outcome.disposition,
        outcome=state,
        vendor_status=(outcome.vendor_status if outcome else None)
        or ticket.link.vendor_status
        or MISSING,
        reason=(outcome.reason if outcome else None) or "",
        issue=issue,
    )


def build_report(
    store: Store,
    config: TicketBridgeConfig,
    adapters: Mapping[str, TicketAdapter],
    client: str,
    *,
    now: datetime,
) -> CloseoutReport:
    """Gather the report of ``client``'s latest closeout (or of its open tickets, if none)."""
    with store.tx() as c:
        found = review_in(c, adapters, client)
        keys = [key for t in found.tickets if t.link.vendor_ticket_id for key in write_keys(t.link)]
        writes = co_store.outbox_by_key(c, keys)
        linked, closed, returned = co_store.client_counts(c)
        returns = co_store.returns_of(c, client)
        since = co_store.first_link_at(c, client)
    lines: list[TicketLine] = []
    for ticket in found.tickets:
        mine = (
            [writes[k] for k in write_keys(ticket.link) if k in writes]
            if ticket.link.vendor_ticket_id
            else []
        )
        attempts = max((w.attempts for w in mine), default=0)
        lines.append(_line(ticket, attempts, any(w.state == "dead" for w in mine)))
    confirmed = [line for line in lines if line.outcome == "confirmed"]
    scorecard = collect(store, config, since=since or _EPOCH, now=now, client=client)
    return CloseoutReport(
        client=client,
        generated_at=now,
        closeout=found.closeout,
        tickets=lines,
        completed=sum(1 for x in confirmed if x.disposition == Disposition.COMPLETE),
        cancelled=sum(1 for x in confirmed if x.disposition == Disposition.CANCEL),
        vendor_closed=len(confirmed),
        still_open=[x for x in lines if x.outcome not in FINISHED],
        issues=[x for x in lines if x.issue],
        scorecard=[_scorecard_cells(row) for row in scorecard.rows],
        tenure_since=since,
        clients_linked=linked,
        clients_closed_out=closed,
        clients_returned=returned,
        returns=[
            {
                "link": str(event.link_id),
                "at": f"{event.recorded_at:%Y-%m-%d %H:%M} UTC",
                "closeout": str((event.detail or {}).get("closeout_id", MISSING)),
            }
            for event in returns
        ],
    )


def _environment() -> Environment:
    """``*.html.j2`` templates are autoescaped; Markdown ones escape table pipes instead."""
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _context(report: CloseoutReport) -> dict[str, Any]:
    return {"r": report, "missing": MISSING}


def render_markdown(report: CloseoutReport) -> str:
    """The report as Markdown (table cells have their pipes escaped)."""
    env = _environment()
    env.filters["cell"] = lambda value: str(value).replace("|", "\\|").replace("\n", " ")
    return env.get_template("closeout.md.j2").render(_context(report))


def render_html(report: CloseoutReport) -> str:
    """The report as one self-contained HTML page (autoescaped)."""
    return _environment().get_template("closeout.html.j2").render(_context(report))
