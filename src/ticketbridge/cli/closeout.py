"""``ticketbridge closeout``: a leaving client's open ticket review, its closeout, the report.

``ticketbridge closeout CLIENT`` is the open ticket review (a dry run: nothing is written);
``--apply`` closes the client out (see :mod:`ticketbridge.closeout`), and exits 1 naming
every vendor ticket still open while the closeout is not done.  ``closeout report CLIENT``
writes the deactivation session's report; ``closeout list`` lists recorded closeouts.
A client named like a subcommand is given with ``closeout run CLIENT``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from typer.core import TyperGroup

from ticketbridge.cli.output import Column, Format, FormatOption, emit

__all__ = ["closeout_app"]


class _ClientFirst(TyperGroup):
    """``closeout CLIENT ...`` runs ``closeout run CLIENT ...``: the subcommands keep their
    names, anything else is a client."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


closeout_app = typer.Typer(
    cls=_ClientFirst,
    help="Client service closeout: review a leaving client's open tickets, complete or "
    "cancel them at their vendors (--apply), and report on it.",
    no_args_is_help=True,
)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The YAML configuration file.", envvar="TICKETBRIDGE_CONFIG"
    ),
]
ClientArgument = Annotated[
    str, typer.Argument(help="The client as the PSA names its company (the links' company).")
]


def _load(path: Path) -> Any:
    from ticketbridge.cli import _load as load

    return load(path)


def _seconds(option: str, text: str) -> float:
    from ticketbridge.config import parse_duration

    try:
        return float(parse_duration(text))
    except ValueError as exc:
        err.print(f"{option}: {exc}", highlight=False)
        raise typer.Exit(2) from None


REVIEW_COLUMNS = [
    Column("psa_ticket", "PSA ticket", ident=True),
    Column("summary"),
    Column("psa_status", "PSA status"),
    Column("vendor"),
    Column("vendor_ticket", "vendor ticket", ident=True),
    Column("vendor_status", "vendor status"),
    Column("vendor_class", "class"),
    Column("sla_clock", "SLA clock"),
    Column("chains", "running chains"),
    Column("closeout"),
    Column("reason"),
]


#: Writes claimed at once while closing out (each ticket's writes still go out in order).
DISPATCH_BATCH = 64


class _ProgressBar:
    """The closeout's progress as a rich bar on stderr: vendor tickets confirmed of all."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def started(self, total: int) -> None:
        self.task = self.bar.add_task("closing vendor tickets", total=total or 1)

    def advanced(self, finished: int, waiting: int, note: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=finished, description=note)


@closeout_app.command("run")
def closeout_run(
    client: ClientArgument,
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Close the client out: stop its escalations and client updates, complete "
            "or cancel every vendor ticket, wait for the vendors.  Without it: a dry run.",
        ),
    ] = False,
    complete: Annotated[
        list[str] | None,
        typer.Option(
            "--complete",
            help="A PSA ticket (id or number) whose vendor ticket is completed, not "
            "cancelled; repeat for several.  Tickets the vendor resolved already count as "
            "completed.",
        ),
    ] = None,
    client_name: Annotated[
        str | None, typer.Option(help="How the closing notes name the client.")
    ] = None,
    timeout: Annotated[
        str, typer.Option(help="How long to wait for the vendors' confirmations (15m, 1h).")
    ] = "10m",
    poll_every: Annotated[
        str, typer.Option(help="How often to read a vendor ticket back while waiting.")
    ] = "15s",
    fmt: FormatOption = Format.table,
) -> None:
    """The client's open tickets with their vendor tickets, SLA clocks and running chains;
    with --apply, close them out (resumable: run it again to continue)."""
    from ticketbridge.closeout import CloseoutError, review
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    wait = _seconds("--timeout", timeout)
    every = max(0.1, _seconds("--poll-every", poll_every))  # never a busy loop
    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    adapters = build_adapters(cfg)
    try:
        store.upgrade()
        if not apply:
            found = review(store, adapters, client)
            others = asyncio.run(_unlinked(cfg, adapters, found))
            _show_review(found, others, fmt)
            return
        try:
            outcome = asyncio.run(
                _apply(cfg, store, adapters, client, set(complete or ()), client_name, wait, every)
            )
        except CloseoutError as exc:
            err.print(f"[bold red]closeout refused:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
    finally:
        store.close()
    _show_outcome(outcome, fmt)
    if not outcome.done:
        err.print(
            f"[bold red]closeout of {client} is not done[/]: "
            f"{len(outcome.still_open)} vendor ticket(s) still open",
            highlight=False,
        )
        for line in (outcome.closeout.reason or "").splitlines():
            err.print(f"  {line}", highlight=False, markup=False)
        err.print("run it again to continue once the vendors answer", highlight=False)
        raise typer.Exit(1)
    err.print(f"[green]closeout of {client} is done[/]", highlight=False)


async def _apply(
    cfg: Any,
    store: Any,
    adapters: Any,
    client: str,
    complete: set[str],
    client_name: str | None,
    wait: float,
    every: float,
) -> Any:
    from ticketbridge.clock import SystemClock
    from ticketbridge.closeout import Closer
    from ticketbridge.engine.dispatch import Dispatcher
    from ticketbridge.engine.wake import Wake
    from ticketbridge.metrics import Metrics
    from ticketbridge.store import StoreLockedError

    clock = SystemClock()
    dispatcher = Dispatcher(cfg, store, adapters, Metrics(), clock, Wake())

    async def dispatch() -> int:
        return await dispatcher.dispatch_once(DISPATCH_BATCH)

    async def daemon_sends() -> int:
        return 0

    send = dispatch
    if store.is_sqlite:
        try:
            store.lock_single_writer()
        except StoreLockedError:
            # the daemon owns this SQLite file: it sends the closing writes, we wait for them
            err.print("the daemon is running on this store: it sends the closing writes")
            send = daemon_sends
        else:
            dispatcher.recover()  # writes a stopped run left in flight: looked up, then sent
    closer = Closer(cfg, store, adapters, clock, send)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Bar(*columns, console=err, transient=False) as bar:
            return await closer.apply(
                client,
                complete=complete,
                client_name=client_name,
                timeout=wait,
                poll_every=every,
                progress=_ProgressBar(bar),
            )
    finally:
        await dispatcher.close_senders()
        for adapter in adapters.values():
            await adapter.aclose()


async def _unlinked(cfg: Any, adapters: Any, found: Any) -> Any:
    from ticketbridge.closeout import unlinked

    try:
        return await unlinked(cfg, adapters, found)
    finally:
        for adapter in adapters.values():
            await adapter.aclose()


def _show_review(found: Any, others: Any, fmt: Format) -> None:
    rows = [t.as_row() for t in found.tickets] + others.rows()
    emit(rows, REVIEW_COLUMNS, fmt, empty=f"{found.client}: no open ticket")
    if fmt is Format.table:
        for system in others.unlisted:
            err.print(
                f"{system} cannot list a company's tickets: only its linked tickets are shown",
                highlight=False,
            )
        last = found.closeout
        state = "" if last is None else f"; closeout #{last.id} is {last.state}"
        err.print(
            f"{len(rows)} open ticket(s) of {found.client}{state} -- dry run, nothing written; "
            "close them out with --apply",
            highlight=False,
        )


def _show_outcome(outcome: Any, fmt: Format) -> None:
    rows = [t.as_row() for t in outcome.tickets]
    for row, ticket in zip(rows, outcome.tickets, strict=True):
        row["disposition"] = None if ticket.outcome is None else ticket.outcome.disposition
    columns = [*REVIEW_COLUMNS[:6], Column("disposition"), *REVIEW_COLUMNS[-2:]]
    emit(rows, columns, fmt, empty="no ticket")
    err.print(
        f"{outcome.reads} vendor read(s) while waiting, {outcome.elapsed:.1f}s", highlight=False
    )


class ReportFormat(StrEnum):
    md = "md"
    html = "html"


@closeout_app.command("report")
def closeout_report(
    client: ClientArgument,
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="md (Markdown) or html.")
    ] = ReportFormat.md,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """The closeout report for the deactivation session: tickets completed and cancelled,
    what is still open and why, the client's supplier SLA over its tenure, the KPIs."""
    from ticketbridge.closeout_report import build_report, render_html, render_markdown
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        store.upgrade()
        report = build_report(store, cfg, build_adapters(cfg), client, now=datetime.now(tz=UTC))
    finally:
        store.close()
    text = render_html(report) if fmt is ReportFormat.html else render_markdown(report)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    err.print(f"wrote {output}", highlight=False)


class CloseoutState(StrEnum):
    closing = "closing"
    done = "done"


@closeout_app.command("list")
def closeout_list(
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    client: Annotated[str | None, typer.Option(help="Only this client.")] = None,
    state: Annotated[
        CloseoutState | None, typer.Option(help="Only closeouts in this state.")
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Recorded closeouts, newest first: their tickets by outcome and the client's returns."""
    from ticketbridge.store import Store
    from ticketbridge.store import closeout as co_store

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        store.upgrade()
        with store.tx() as c:
            found = co_store.list_closeouts(c, client)
    finally:
        store.close()
    rows = [
        {
            "closeout": s.closeout.id,
            "client": s.closeout.client,
            "state": s.closeout.state,
            "started_at": s.closeout.started_at,
            "finished_at": s.closeout.finished_at,
            "tickets": sum(s.counts.values()),
            "confirmed": s.counts.get("confirmed", 0),
            "open": sum(v for k, v in s.counts.items() if k in ("queued", "open", "refused")),
            "returns": s.returns,
            "reason": s.closeout.reason,
        }
        for s in found
        if state is None or s.closeout.state == state.value
    ]
    emit(
        rows,
        [
            Column("closeout", ident=True),
            Column("client", ident=True),
            Column("state"),
            Column("started_at", "started (UTC)"),
            Column("finished_at", "finished (UTC)"),
            Column("tickets"),
            Column("confirmed"),
            Column("open"),
            Column("returns"),
            Column("reason"),
        ],
        fmt,
        empty="no closeout recorded",
    )
