"""Supplier scorecards from the store: ``ticketbridge sla report``.

Per vendor and priority: tickets, tickets without a contract target, how many
were acknowledged and resolved, acknowledgment and resolution time (median,
p90), compliance %, breach count and minutes, escalations and reopens, as a
table, CSV, JSON, or a self-contained HTML page with inline SVG charts (no
network needed) for a quarterly business review or a service-credit claim.

The numbers mean what they say (see :mod:`ticketbridge.sla.kpi`): a ticket
without a target is "no target", never compliant; a figure with no data is
shown as missing ("—" in the table and HTML, empty in CSV, ``null`` in JSON,
"no data" in the charts), never as 0; escalations are rule runs that escalated
the ticket, not client updates or notifications.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.table import Table

from ticketbridge.config import TicketBridgeConfig
from ticketbridge.engine.rules import ESCALATION_EVENT
from ticketbridge.engine.sla import format_duration
from ticketbridge.sla.clock import ClockPolicy, SlaState, snapshot
from ticketbridge.sla.kpi import ALL_PRIORITIES, LinkOutcome, ScorecardRow, scorecard
from ticketbridge.sla.models import select_contract
from ticketbridge.store import Store
from ticketbridge.store.reports import event_counts, scorecard_links

__all__ = ["Report", "collect", "render_csv", "render_html", "render_json", "render_table"]

#: Audit event kinds that count as an escalation of a linked ticket: a rule run that
#: fired an escalation action (not every rule step).
ESCALATION_EVENTS = (ESCALATION_EVENT,)

#: How a missing figure is shown in the table and the HTML page.
MISSING = "—"


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    vendor: str | None
    client: str | None
    rows: list[ScorecardRow]


def collect(
    store: Store,
    config: TicketBridgeConfig,
    *,
    since: datetime,
    now: datetime,
    vendor: str | None = None,
    client: str | None = None,
) -> Report:
    """Scorecard rows for links opened since ``since``, clocks evaluated at ``now``."""
    calendars = config.sla.build_calendars()
    outcomes: list[LinkOutcome] = []
    policies: dict[tuple[str, str | None], ClockPolicy] = {}
    with store.tx() as c:
        rows = scorecard_links(c, since=since, vendor=vendor, client=client)
        counts = event_counts(c, ESCALATION_EVENTS)
    for row in rows:
        priority = row.clock_priority or "-"
        escalations = int(counts.get(row.id, 0))
        contract = select_contract(config.sla.contracts, row.vendor_system, row.company)
        if contract is None or contract.calendar not in calendars:
            # no contract covers it (any more): a ticket without a target, not a dropped one
            outcomes.append(
                LinkOutcome(
                    vendor=row.vendor_system,
                    priority=priority,
                    client=row.company,
                    targeted=False,
                    escalations=escalations,
                )
            )
            continue
        # one policy per contract and priority, not per link (it is a fifth of the time)
        policy_key = (contract.name, row.clock_priority)
        policy = policies.get(policy_key)
        if policy is None:
            policy = ClockPolicy.from_contract(
                contract, row.clock_priority, calendars[contract.calendar]
            )
            policies[policy_key] = policy
        snap = snapshot(SlaState.from_dict(row.clock_state), policy, now)
        outcomes.append(
            LinkOutcome.from_snapshot(
                snap,
                vendor=row.vendor_system,
                priority=priority,
                client=row.company,
                escalations=escalations,
            )
        )
    return Report(since, now, vendor, client, scorecard(outcomes, totals=True))


_COLUMNS = (
    "vendor",
    "priority",
    "tickets",
    "no target",
    "acknowledged",
    "resolved",
    "ack median",
    "ack p90",
    "resolution median",
    "resolution p90",
    "compliance %",
    "breaches",
    "breach minutes",
    "escalations",
    "reopens",
)


def _duration(value: timedelta | None) -> str:
    return MISSING if value is None else format_duration(value)


def _cells(row: ScorecardRow) -> list[str]:
    return [
        row.vendor,
        row.priority,
        str(row.tickets),
        str(row.no_target),
        str(row.acknowledged),
        str(row.resolved),
        _duration(row.ack_median),
        _duration(row.ack_p90),
        _duration(row.resolution_median),
        _duration(row.resolution_p90),
        MISSING if row.compliance_pct is None else f"{row.compliance_pct:.1f}",
        MISSING if row.breach_count is None else str(row.breach_count),
        MISSING if row.breach_minutes is None else f"{row.breach_minutes:.0f}",
        str(row.escalations),
        str(row.reopens),
    ]


def render_table(report: Report) -> Table:
    table = Table(title=f"Supplier scorecard {report.since:%Y-%m-%d} .. {report.until:%Y-%m-%d}")
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column in ("vendor", "priority") else "right")
    for row in report.rows:
        style = "bold" if row.priority == ALL_PRIORITIES else None
        table.add_row(*_cells(row), style=style)
    return table


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _as_dict(row: ScorecardRow) -> dict[str, Any]:
    return {
        "vendor": row.vendor,
        "priority": row.priority,
        "tickets": row.tickets,
        "no_target": row.no_target,
        "acknowledged": row.acknowledged,
        "resolved": row.resolved,
        "ack_median_seconds": _seconds(row.ack_median),
        "ack_p90_seconds": _seconds(row.ack_p90),
        "resolution_median_seconds": _seconds(row.resolution_median),
        "resolution_p90_seconds": _seconds(row.resolution_p90),
        "compliance_pct": row.compliance_pct,
        "breach_count": row.breach_count,
        "breach_minutes": row.breach_minutes,
        "escalations": row.escalations,
        "reopens": row.reopens,
    }


def render_csv(report: Report) -> str:
    out = io.StringIO()
    rows = [_as_dict(r) for r in report.rows]
    fields = list(_as_dict(report.rows[0]).keys()) if rows else ["vendor", "priority"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def render_json(report: Report) -> str:
    return json.dumps(
        {
            "since": report.since.isoformat(),
            "until": report.until.isoformat(),
            "vendor": report.vendor,
            "client": report.client,
            "rows": [_as_dict(r) for r in report.rows],
        },
        indent=2,
    )


def _bar_chart(
    title: str,
    items: Sequence[tuple[str, float | None]],
    unit: str,
    maximum: float | None = None,
    missing: str = "no data",
) -> str:
    """A horizontal bar chart as inline SVG; an item without a value gets no bar and
    the ``missing`` label (never a bar of 0)."""
    width, bar_h, gap, label_w = 640, 18, 6, 190
    height = 30 + len(items) * (bar_h + gap) + 10
    top = max([v for _, v in items if v is not None] + [maximum or 0.0, 1e-9])
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="{html.escape(title)}">'
        ),
        f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(items):
        y = 30 + i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{html.escape(label)}</text>')
        if value is None:
            parts.append(
                f'<text x="{label_w}" y="{y + 13}" font-size="12" font-style="italic" '
                f'fill="#777">{html.escape(missing)}</text>'
            )
            continue
        w = (width - label_w - 80) * (value / top)
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3b6ea5"/>'
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 13}" font-size="12">'
            f"{value:.1f}{html.escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report) -> str:
    rows = [r for r in report.rows if r.priority != ALL_PRIORITIES]
    labels = [f"{r.vendor} P{r.priority}" for r in rows]
    pairs = list(zip(labels, rows, strict=True))
    compliance = _bar_chart(
        "Compliance by vendor and priority",
        [(lab, r.compliance_pct) for lab, r in pairs],
        " %",
        100.0,
        missing="no target",
    )
    ack = _bar_chart(
        "Median acknowledgment (minutes)",
        [
            (lab, None if r.ack_median is None else r.ack_median.total_seconds() / 60)
            for lab, r in pairs
        ],
        " min",
        missing="no data (none acknowledged)",
    )
    breach = _bar_chart(
        "Breach minutes",
        [(lab, r.breach_minutes) for lab, r in pairs],
        " min",
        missing="no target",
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr"
        + (' class="total"' if r.priority == ALL_PRIORITIES else "")
        + ">"
        + "".join(f"<td>{html.escape(v)}</td>" for v in _cells(r))
        + "</tr>"
        for r in report.rows
    )
    scope = (
        ", ".join(
            x
            for x in (
                f"vendor {report.vendor}" if report.vendor else "",
                f"client {report.client}" if report.client else "",
            )
            if x
        )
        or "all vendors and clients"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Supplier SLA scorecard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0 2rem; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:nth-child(-n+2), td:nth-child(-n+2) {{ text-align: left; }}
tr.total td {{ font-weight: bold; background: #f3f3f3; }}
figure {{ margin: 1rem 0; }}
</style></head><body>
<h1>Supplier SLA scorecard</h1>
<p>{report.since:%Y-%m-%d} to {report.until:%Y-%m-%d} — {html.escape(scope)}.
Times are measured in each contract's basis (business or calendar time), only while
the ticket was with the vendor. Medians and p90 cover the tickets acknowledged (resolved)
so far; tickets without a contract target are counted under "no target" and left out of
compliance and breaches; escalations are rule runs that escalated a ticket (moved it up a
tier, raised the vendor's priority or e-mailed its escalation contacts). {MISSING} means no data.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<figure>{compliance}</figure>
<figure>{ack}</figure>
<figure>{breach}</figure>
</body></html>
"""
