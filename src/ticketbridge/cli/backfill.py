"""``ticketbridge backfill`` and ``ticketbridge reconcile``: adopt the linked tickets that
exist before the store knew them, and compare open links with both systems by hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ticketbridge.cli import ConfigOption, _load, err
from ticketbridge.cli.output import Column, Format, FormatOption, emit
from ticketbridge.errors import TicketBridgeError

__all__ = ["backfill", "reconcile"]

#: What the summary shows of a run's counts, with headings.
_BACKFILL_COLUMNS = [
    Column("scope", ident=True),
    Column("since"),
    Column("read"),
    Column("adopted"),
    Column("already_linked", "already linked"),
    Column("no_reference", "no reference"),
    Column("not_found", "not found"),
    Column("skipped"),
    Column("notes_matched", "notes matched"),
    Column("notes_seen", "notes seen"),
    Column("notes_ours", "notes ours"),
    Column("state"),
]


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Log warnings (a reference not found, a repair, a failure) to stderr, redacted, so
    stdout carries only the summary a script reads; the previous set-up comes back after."""
    from ticketbridge.log import redact

    previous = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)


def _status(counts: dict[str, int]) -> str:
    return (
        f"{counts['read']} read · {counts['adopted']} adopted · "
        f"{counts['already_linked']} already linked"
    )


def backfill(
    since: Annotated[
        str,
        typer.Option(
            help="Adopt PSA tickets updated this far back: 30d, 12h, 1h30m, PT2H, seconds ..."
        ),
    ] = "30d",
    connection: Annotated[
        str | None, typer.Option(help="Only this connection (default: every one).")
    ] = None,
    restart: Annotated[
        bool,
        typer.Option("--restart", help="Start over instead of continuing an unfinished run."),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many PSA tickets (run again to continue)."),
    ] = None,
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    fmt: FormatOption = Format.table,
) -> None:
    """Adopt linked tickets that exist before ticketbridge knew them: PSA tickets updated
    since --since whose vendor-reference field names a vendor ticket become links, their
    notes on both sides recorded as already present (copies matched, the rest as seen).
    Nothing is posted.  Interrupted, it continues where it stopped when run again."""
    from ticketbridge.clock import SystemClock
    from ticketbridge.duration import parse_duration
    from ticketbridge.engine.backfill import Backfill, BackfillError, BackfillRun
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    try:
        window = parse_duration(since)
    except ValueError as exc:
        err.print(f"--since: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if window <= timedelta(0):
        err.print("--since: give a positive duration, e.g. 30d", highlight=False)
        raise typer.Exit(2)
    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    adapters = build_adapters(cfg)
    runner = Backfill(cfg, store, adapters, SystemClock())
    try:
        scopes = runner.plan(connection)
    except BackfillError as exc:
        err.print(str(exc), highlight=False)
        raise typer.Exit(2) from None
    runs: list[BackfillRun] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )

    async def main() -> None:
        try:
            for psa, conns in scopes.items():
                task = progress.add_task(f"backfill {psa}", total=None, status="listing")

                def tick(run: BackfillRun, _ticket: str, task: Any = task) -> None:
                    progress.update(task, status=_status(run.counts))

                run = await runner.run(
                    psa, conns, window, restart=restart, stop_after=limit, progress=tick
                )
                progress.update(task, total=1, completed=1, status=_status(run.counts))
                runs.append(run)
        finally:
            for adapter in adapters.values():
                await adapter.aclose()

    try:
        store.upgrade()
        with _warnings_to_stderr(), progress:
            asyncio.run(main())
    except KeyboardInterrupt:
        err.print(
            "interrupted: every ticket finished so far is recorded; run the same command "
            "again to continue after it (--restart to start over)",
            highlight=False,
        )
        raise typer.Exit(130) from None
    except TicketBridgeError as exc:
        err.print(
            f"backfill stopped: {exc}\nevery ticket finished so far is recorded; fix the "
            "cause and run the same command again to continue after it",
            highlight=False,
        )
        raise typer.Exit(1) from None
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {
            "scope": run.scope,
            "since": run.since_at,
            **run.counts,
            "state": "finished" if run.finished else "paused",
        }
        for run in runs
    ]
    if fmt is Format.table:
        # one column per scope, one line per figure: readable in 80 columns
        emit(
            [
                {"figure": col.title, **{str(row["scope"]): row[col.key] for row in rows}}
                for col in _BACKFILL_COLUMNS[1:]
            ],
            [Column("figure", ""), *(Column(str(row["scope"]), ident=True) for row in rows)],
            fmt,
        )
    else:
        emit(rows, _BACKFILL_COLUMNS, fmt)
    if any(not run.finished for run in runs):
        err.print("paused: run the same command again to continue", highlight=False)


def reconcile(
    link: Annotated[
        int | None, typer.Option(help="Only this link id (default: every open link).")
    ] = None,
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    fmt: FormatOption = Format.table,
) -> None:
    """Compare open links with both systems once and repair what drifted (a note or a
    status no webhook announced) through the normal path; the writes it queues are sent
    by the daemon."""
    from ticketbridge.clock import SystemClock
    from ticketbridge.engine import Engine
    from ticketbridge.engine.reconcile import Reconciler
    from ticketbridge.metrics import Metrics
    from ticketbridge.store import Store, repo
    from ticketbridge.wiring import build_adapters

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    adapters = build_adapters(cfg)
    try:
        store.upgrade()
        if link is not None:
            with store.tx() as c:
                if repo.link_by_id(c, link) is None:
                    err.print(f"link {link} not found (ticketbridge links list shows them)")
                    raise typer.Exit(1)
        engine = Engine(cfg, store, adapters, Metrics(), SystemClock())

        async def main() -> Any:
            try:
                return await Reconciler(engine).run(link_id=link)
            finally:
                for adapter in adapters.values():
                    await adapter.aclose()

        with _warnings_to_stderr():
            run = asyncio.run(main())
    finally:
        store.close()
    emit(
        [{**run.summary(), "stopped": run.stopped or "-"}],
        [
            Column("links", "links compared"),
            Column("links_repaired", "links repaired"),
            Column("notes", "notes recovered"),
            Column("fields", "statuses/priorities recovered"),
            Column("failed"),
            Column("stopped"),
        ],
        fmt,
    )
