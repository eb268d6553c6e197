"""``ticketbridge sla``: the supplier scorecard and clock repair.

The report's filters are checked before anything is counted: a vendor or client the report
cannot know is an error naming the ones it does know, never an empty scorecard that reads
as "no tickets".
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ticketbridge.cli import DEFAULT_CONFIG, ConfigOption, _load, err, out
from ticketbridge.cli.output import Column, emit

if TYPE_CHECKING:
    from ticketbridge.config import TicketBridgeConfig
    from ticketbridge.report import Report
    from ticketbridge.store import Store

__all__ = ["app"]

app: typer.Typer = typer.Typer(
    help="Supplier SLA scorecards and clock repair.", no_args_is_help=True
)

#: At most this many names are listed in an error about an unknown one.
NAMES_SHOWN = 20


class ReportFormat(StrEnum):
    """The scorecard's forms: a table for people, CSV/JSON for scripts, HTML for a review."""

    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


@app.command("report")
def sla_report(
    config: ConfigOption = DEFAULT_CONFIG,
    since: Annotated[str, typer.Option(help="How far back: 90d, 12w, 24h ...")] = "90d",
    vendor: Annotated[
        str | None, typer.Option(help="Only this vendor system (a connection's vendor).")
    ] = None,
    client: Annotated[str | None, typer.Option(help="Only this PSA company.")] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format", "-f", help="table for people, csv or json for scripts, html to share."
        ),
    ] = ReportFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Supplier scorecard per vendor and priority from the store."""
    from ticketbridge.clock import utcnow
    from ticketbridge.config import parse_duration
    from ticketbridge.report import collect, render_csv, render_html, render_json
    from ticketbridge.store import Store

    if fmt is ReportFormat.table and output is not None:
        err.print("--output needs --format csv, json or html")
        raise typer.Exit(2)
    try:
        window = timedelta(seconds=parse_duration(since))
    except ValueError as exc:
        err.print(f"--since: {exc}", highlight=False)
        raise typer.Exit(2) from None
    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        now = utcnow()
        _check_filters(store, cfg, since=now - window, vendor=vendor, client=client)
        report = collect(store, cfg, since=now - window, now=now, vendor=vendor, client=client)
    finally:
        store.close()
    if fmt is ReportFormat.table:
        _print_table(report)
        return
    text = {
        ReportFormat.csv: render_csv,
        ReportFormat.json: render_json,
        ReportFormat.html: render_html,
    }[fmt](report)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", highlight=False)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN]) or "none"
    more = len(names) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _did_you_mean(value: str, names: Sequence[str]) -> str:
    folded = {n.casefold(): n for n in names}
    close = folded.get(value.casefold()) or next(
        iter(difflib.get_close_matches(value, names, n=1)), None
    )
    return f" — did you mean {close!r}?" if close else ""


def _check_filters(
    store: Store,
    cfg: TicketBridgeConfig,
    *,
    since: datetime,
    vendor: str | None,
    client: str | None,
) -> None:
    """Exit 2 naming the known values when --vendor or --client cannot match anything.

    A vendor is known when a connection uses it, or when links of it were opened in the
    window (a vendor since removed from the configuration); a client when links of it
    with an SLA clock (and of the vendor, if given) were opened in the window, the links
    the scorecard counts: the report has nothing else to go by, and an empty scorecard
    would read as "no tickets".
    """
    from ticketbridge.store.reports import scorecard_links

    if vendor is None and client is None:
        return
    with store.tx() as c:
        seen = scorecard_links(c, since=since, vendor=None, client=None)
    if vendor is not None:
        vendors = sorted({conn.vendor for conn in cfg.connections})
        if vendor not in vendors and all(row.vendor_system != vendor for row in seen):
            err.print(
                f"--vendor {vendor!r} is not a vendor system of any connection"
                f"{_did_you_mean(vendor, vendors)} (vendor systems: {_names(vendors)})",
                highlight=False,
            )
            raise typer.Exit(2)
    if client is not None:
        clients = sorted(
            {
                row.company
                for row in seen
                if row.company and (vendor is None or row.vendor_system == vendor)
            }
        )
        if client not in clients:
            scope = f" of vendor {vendor}" if vendor else ""
            err.print(
                f"--client {client!r}: no linked ticket{scope} with an SLA clock of that "
                f"client since {since:%Y-%m-%d}{_did_you_mean(client, clients)} (clients "
                f"with some then: {_names(clients)})",
                highlight=False,
            )
            raise typer.Exit(2)


def _print_table(report: Report) -> None:
    from ticketbridge.engine.sla import format_duration
    from ticketbridge.report import MISSING

    def duration(value: timedelta | None) -> str:
        return MISSING if value is None else format_duration(value)

    def number(value: float | None, spec: str) -> str:
        return MISSING if value is None else format(value, spec)

    rows = [
        {
            "vendor": r.vendor,
            "priority": r.priority,
            "tickets": r.tickets,
            "no_target": r.no_target,
            "acknowledged": r.acknowledged,
            "resolved": r.resolved,
            "ack_median": duration(r.ack_median),
            "ack_p90": duration(r.ack_p90),
            "resolution_median": duration(r.resolution_median),
            "resolution_p90": duration(r.resolution_p90),
            "compliance": number(r.compliance_pct, ".1f"),
            "breaches": number(r.breach_count, "d"),
            "breach_minutes": number(r.breach_minutes, ".0f"),
            "escalations": r.escalations,
            "reopens": r.reopens,
        }
        for r in report.rows
    ]
    right = [
        ("tickets", "tickets"),
        ("no_target", "no target"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
        ("ack_median", "ack median"),
        ("ack_p90", "ack p90"),
        ("resolution_median", "resolution median"),
        ("resolution_p90", "resolution p90"),
        ("compliance", "compliance %"),
        ("breaches", "breaches"),
        ("breach_minutes", "breach minutes"),
        ("escalations", "escalations"),
        ("reopens", "reopens"),
    ]
    emit(
        rows,
        [
            Column("vendor", ident=True),
            Column("priority", ident=True),
            *(Column(key, heading, justify="right") for key, heading in right),
        ],
        "table",
        title=f"Supplier scorecard {report.since:%Y-%m-%d} .. {report.until:%Y-%m-%d}",
        empty=f"no linked ticket with an SLA clock since {report.since:%Y-%m-%d}",
    )


@app.command("repair")
def sla_repair(
    config: ConfigOption = DEFAULT_CONFIG,
    link: Annotated[int | None, typer.Option(help="Only this link id.")] = None,
) -> None:
    """Recompute supplier SLA clocks from the links' event histories (and flag what is due)."""
    from ticketbridge.clock import SystemClock
    from ticketbridge.engine import Engine
    from ticketbridge.metrics import Metrics
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        store.upgrade()
        engine = Engine(cfg, store, build_adapters(cfg), Metrics(), SystemClock())
        count = engine.sla_repair(link)
    finally:
        store.close()
    out.print(f"recomputed {count} clock(s)")
