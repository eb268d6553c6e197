"""The ``ticketbridge`` command line.  Thin: every command calls into the package."""

from __future__ import annotations

import asyncio
import difflib
import os
import signal
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ticketbridge import __version__
from ticketbridge.cli.output import (
    Column,
    Format,
    FormatOption,
    TextFormat,
    TextFormatOption,
    emit,
)
from ticketbridge.config import TicketBridgeConfig, load_config
from ticketbridge.errors import ConfigError, StoreError

__all__ = ["app", "main"]

app = typer.Typer(
    name="ticketbridge",
    help="Bridge MSP PSA tickets to vendor tickets: notes both ways, SLA clocks, escalations.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="State store maintenance.", no_args_is_help=True)
outbox_app = typer.Typer(help="Inspect and replay queued writes.", no_args_is_help=True)
links_app = typer.Typer(help="Linked tickets and their supplier SLA state.", no_args_is_help=True)
mail_app = typer.Typer(
    help="The review list: vendor cases no link holds (mail to our mailbox about a case we "
    "did not open), and linking them to PSA tickets.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(links_app, name="links")
app.add_typer(mail_app, name="mail")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

#: Where commands look for the configuration when neither --config nor the variable says.
DEFAULT_CONFIG = Path("config/ticketbridge.yaml")
CONFIG_VARIABLE = "TICKETBRIDGE_CONFIG"

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The YAML configuration file.", envvar=CONFIG_VARIABLE),
]


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"{__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Bridge MSP PSA tickets to vendor tickets: notes both ways, SLA clocks, escalations."""


def _file_problem(path: Path, *, argument: bool = False) -> tuple[str, str, str] | None:
    """Why ``path`` cannot be the configuration file, and how to point at one, or ``None``.

    ``argument``: the path was given as the command's argument (``check-config FILE``);
    otherwise it came from ``--config``, the variable, or the default.
    """
    if path.is_file():
        return None
    why = "it is a directory" if path.is_dir() else "no such file"
    message = f"cannot read configuration file {path}: {why}"
    if argument:
        return (str(path), message, "give the path of an existing file")
    if os.environ.get(CONFIG_VARIABLE) == str(path):
        return (
            str(path),
            f"{message} (the path comes from {CONFIG_VARIABLE})",
            f"fix {CONFIG_VARIABLE} or pass --config PATH",
        )
    if path == DEFAULT_CONFIG:
        message += f" (the default path, under {Path.cwd()})"
    return (str(path), message, f"point at one with --config PATH or {CONFIG_VARIABLE}=PATH")


def _load(path: Path, *, argument: bool = False) -> TicketBridgeConfig:
    """The configuration at ``path``; every problem printed and exit 2 when it is unsound."""
    problem = _file_problem(path, argument=argument)
    if problem is not None:
        err.print(f"[bold red]{problem[1]}[/]\n  [dim]hint: {problem[2]}[/]", highlight=False)
        raise typer.Exit(2)
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_problems(path, exc)
        raise typer.Exit(2) from None


def _print_problems(path: Path, exc: ConfigError) -> None:
    err.print(f"[bold red]{path}: {len(exc.problems)} problem(s)[/]", highlight=False)
    for where, message, hint in exc.problems:
        line = f"  [bold]{where}[/]: {message}"
        if hint:
            line += f"\n      [dim]hint: {hint}[/]"
        err.print(line, highlight=False)


@app.command()
def version() -> None:
    """Print the version (as --version does)."""
    sys.stdout.write(f"{__version__}\n")


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="The YAML configuration file to check.")],
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also log in to every system and check that each queue, status, priority, "
            "group, assignee, field and account named in configuration and rules exists.",
        ),
    ] = False,
    fmt: TextFormatOption = TextFormat.text,
) -> None:
    """Validate a configuration file: exit 0 when sound, 2 listing every problem.

    With --format json (or table, csv) the problems are rows (where, message, hint) on
    stdout: an empty list when the file is sound."""
    if fmt is not TextFormat.text:
        problems = _problems_of(file, online=online)
        _emit_problems(problems, fmt)
        if problems:
            raise typer.Exit(2)
        return
    config = _load(file, argument=True)
    if online:
        problems = _online_problems(config, notes_to=out)
        if problems:
            _print_problems(file, ConfigError(problems))
            raise typer.Exit(2)
    out.print(
        f"[green]{file}: OK[/] — {len(config.systems)} system(s), "
        f"{len(config.connections)} connection(s)" + (", names checked online" if online else ""),
        highlight=False,
    )


def _problems_of(file: Path, *, online: bool) -> list[Any]:
    """Every problem of the file (and of the names it uses, when ``online``), for rows."""
    found = _file_problem(file, argument=True)
    if found is not None:
        return [found]
    try:
        config = load_config(file)
    except ConfigError as exc:
        return list(exc.problems)
    return _online_problems(config, notes_to=err) if online else []


def _online_problems(config: TicketBridgeConfig, *, notes_to: Console) -> list[Any]:
    from ticketbridge.namecheck import online_check

    report = asyncio.run(online_check(config))
    for note in report.notes:
        notes_to.print(f"[dim]note: {note}[/]", highlight=False)
    return list(report.problems)


def _emit_problems(problems: list[Any], fmt: TextFormat) -> None:
    emit(
        [{"where": where, "message": message, "hint": hint} for where, message, hint in problems],
        [Column("where", ident=True), Column("message"), Column("hint")],
        fmt,
        empty="no problems",
    )


@app.command()
def run(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run the daemon: polls, webhooks, dispatch, health and metrics."""
    from ticketbridge.daemon import Daemon
    from ticketbridge.log import configure_logging

    cfg = _load(config)
    configure_logging(json=cfg.log.json_output, level=cfg.log.level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Daemon(cfg).run(stop)

    try:
        asyncio.run(main())
    except ConfigError as exc:  # engine.strict_names: a name checked at start is missing
        _print_problems(config, exc)
        raise typer.Exit(2) from None
    except StoreError as exc:
        err.print(f"[bold red]store error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def demo(
    keep: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's SQLite file at this path instead of a temporary one."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the daemon's log events.")
    ] = False,
    vendor: Annotated[
        str,
        typer.Option(
            help="The vendor: servicenow (its built-in simulator), email (an ISP reached "
            "only by mail, through a mail server on 127.0.0.1) or rt (a local Request "
            "Tracker 5, installed by scripts/rt-up)."
        ),
    ] = "servicenow",
) -> None:
    """Play a scripted incident: the built-in ConnectWise simulator and a vendor."""
    from ticketbridge.demo import VENDORS, run_demo

    if vendor not in VENDORS:
        err.print(f"--vendor must be one of {', '.join(VENDORS)}, not {vendor!r}")
        raise typer.Exit(2)
    raise typer.Exit(run_demo(keep_db=keep, verbose=verbose, vendor=vendor))


@app.command()
def sandbox(
    kinds: Annotated[
        list[str] | None,
        typer.Argument(help="Products to simulate (default: every one that has a simulator)."),
    ] = None,
    base_port: Annotated[int, typer.Option(help="Port of the first simulator; +1 each.")] = 8101,
) -> None:
    """Serve product simulators on 127.0.0.1 until interrupted."""
    from importlib import import_module

    from ticketbridge.adapters import adapter_class, adapter_kinds, simulator_app
    from ticketbridge.sandbox.server import SandboxServer, run_sandbox

    known = adapter_kinds()
    chosen = kinds or [k for k in known if adapter_class(k).simulator]
    unknown = [k for k in chosen if k not in known]
    if unknown:
        err.print(f"unknown product {', '.join(unknown)}; registered: {', '.join(known)}")
        raise typer.Exit(2)
    apps: dict[str, tuple[Any, int]] = {}
    for offset, kind in enumerate(chosen):
        app_ = simulator_app(kind)
        if app_ is None:
            err.print(f"{kind} has no simulator")
            raise typer.Exit(2)
        apps[kind] = (app_, base_port + offset)

    def ready(servers: Mapping[str, SandboxServer]) -> None:
        for kind, server in servers.items():
            module = import_module(str(adapter_class(kind).simulator).partition(":")[0])
            hint = getattr(module, "LOGIN_HINT", "")
            out.print(f"{adapter_class(kind).display_name} simulator: {server.url}{hint}")
        out.print("Press Ctrl+C to stop.")

    run_sandbox(apps, on_ready=ready)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Apply the store's migrations."""
    from ticketbridge.store import Store

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        store.upgrade()
        out.print(f"store at revision {store.current_revision()}: {store.describe()}")
    except StoreError as exc:
        err.print(f"[bold red]store error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        store.close()


class OutboxState(StrEnum):
    pending = "pending"
    sending = "sending"
    dead = "dead"
    done = "done"
    cancelled = "cancelled"


@outbox_app.command("list")
def outbox_list(
    config: ConfigOption = DEFAULT_CONFIG,
    state: Annotated[
        list[OutboxState] | None,
        typer.Option(help="Only these states (default: pending, sending and dead)."),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """List queued writes (default: everything not done), each with what it waits on."""
    from ticketbridge.clock import utcnow
    from ticketbridge.engine.dispatch import describe_waits
    from ticketbridge.store import Store, repo

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    now = utcnow()
    states = [s.value for s in state] if state else ["pending", "sending", "dead"]
    try:
        with store.tx() as c:
            rows = repo.outbox_rows(c, states=states)
            waits = describe_waits(c, rows, now)
    finally:
        store.close()
    emit(
        [
            {
                "id": row.id,
                "link": row.link_id,
                "target": row.target_system,
                "operation": row.operation,
                "state": row.state,
                "attempts": row.attempts,
                "waiting_on": waits.get(row.id, ""),
            }
            for row in rows
        ],
        [
            Column("id", ident=True),
            Column("link", ident=True),
            Column("target"),
            Column("operation"),
            Column("state"),
            Column("attempts"),
            Column("waiting_on", "waiting on"),
        ],
        fmt,
        empty="no queued writes in " + ", ".join(states),
    )


@outbox_app.command("retry")
def outbox_retry(
    row_id: Annotated[int, typer.Argument(help="The outbox row to put back in line.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Put a dead-lettered write back in line."""
    _outbox_change(config, row_id, "retry")


@outbox_app.command("cancel")
def outbox_cancel(
    row_id: Annotated[int, typer.Argument(help="The outbox row to give up on.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Give up on a write (it stops blocking later writes of its ticket)."""
    _outbox_change(config, row_id, "cancel")


#: The states each change applies to, as the store's updates check them.
_CHANGEABLE = {"retry": ("dead",), "cancel": ("dead", "pending")}
_PAST = {"retry": "retried", "cancel": "cancelled"}


def _outbox_change(config: Path, row_id: int, action: str) -> None:
    """Retry or cancel one row: "not found" and "in the wrong state" are told apart."""
    from ticketbridge.clock import utcnow
    from ticketbridge.store import Store, repo

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        with store.tx() as c:
            done = (
                repo.outbox_requeue(c, row_id, utcnow())
                if action == "retry"
                else repo.outbox_cancel(c, row_id)
            )
            row = None if done else repo.outbox_row(c, row_id)
    finally:
        store.close()
    if not done:
        if row is None:
            err.print(
                f"outbox row {row_id}: not found (`ticketbridge outbox list --state dead` "
                "lists the rows)",
                highlight=False,
            )
        else:
            allowed = " or ".join(_CHANGEABLE[action])
            err.print(
                f"outbox row {row_id} is {row.state}: only {allowed} rows can be {_PAST[action]}",
                highlight=False,
            )
        raise typer.Exit(1)
    out.print(f"outbox row {row_id}: {action} done", highlight=False)


# The rule and scorecard commands live in modules of their own (they use the helpers above).
from ticketbridge.cli import rules as _rules
from ticketbridge.cli import sla as _sla

app.add_typer(_rules.app, name="rules")
app.add_typer(_sla.app, name="sla")


class LinkState(StrEnum):
    watching = "watching"
    creating = "creating"
    open = "open"
    closed = "closed"


@links_app.command("list")
def links_list(
    config: ConfigOption = DEFAULT_CONFIG,
    state: Annotated[LinkState | None, typer.Option(help="Only links in this state.")] = None,
    connection: Annotated[
        str | None, typer.Option(help="Only links of this connection (its name in the config).")
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Every link: PSA ticket, vendor ticket, states, and whether the vendor breached its SLA."""
    from ticketbridge.store import Store, repo
    from ticketbridge.store.sla import breach_counts

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        with store.tx() as c:
            rows = repo.list_links(c, state=state.value if state else None)
            breaches = breach_counts(c)
    finally:
        store.close()
    if connection is not None:
        configured = [conn.name for conn in cfg.connections]
        if connection not in configured and all(r.connection != connection for r in rows):
            err.print(
                f"--connection {connection!r} is not a configured connection"
                f"{_did_you_mean(connection, configured)} "
                f"(connections: {', '.join(configured) or 'none'})",
                highlight=False,
            )
            raise typer.Exit(2)
        rows = [r for r in rows if r.connection == connection]
    emit(
        [
            {
                "link": row.id,
                "connection": row.connection,
                "psa_ticket": row.psa_number or row.psa_ticket_id,
                "psa_status": row.psa_status,
                "vendor_ticket": row.vendor_number or row.vendor_ticket_id,
                "vendor_status": row.vendor_status,
                "state": row.state,
                "sla_breaches": breaches.get(row.id, 0),
                "psa_ticket_id": row.psa_ticket_id,
                "vendor_ticket_id": row.vendor_ticket_id,
            }
            for row in rows
        ],
        [
            Column("link", ident=True),
            Column("connection"),
            Column("psa_ticket", "PSA ticket", ident=True),
            Column("psa_status", "PSA status"),
            Column("vendor_ticket", "vendor ticket", ident=True),
            Column("vendor_status", "vendor status"),
            Column("state"),
            Column("sla_breaches", "SLA breaches"),
            Column("psa_ticket_id", in_table=False),
            Column("vendor_ticket_id", in_table=False),
        ],
        fmt,
        empty="no links",
    )


def _did_you_mean(value: str, names: list[str]) -> str:
    """`` — did you mean 'x'?`` for the closest of ``names`` (case aside), or nothing."""
    folded = {n.casefold(): n for n in names}
    close = folded.get(value.casefold()) or next(
        iter(difflib.get_close_matches(value, names, n=1)), None
    )
    return f" — did you mean {close!r}?" if close else ""


def main() -> None:
    app(prog_name="ticketbridge")


@mail_app.command("unmatched")
def mail_unmatched(
    config: ConfigOption = DEFAULT_CONFIG,
    system: Annotated[str | None, typer.Option(help="Only this vendor system.")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Vendor cases no link holds yet (never dropped): link one with `mail link`."""
    from ticketbridge.review import ReviewError, unmatched
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    adapters = build_adapters(cfg)

    async def run() -> Any:
        try:
            return await unmatched(cfg, store, adapters, system=system)
        finally:
            for adapter in adapters.values():
                await adapter.aclose()

    try:
        store.upgrade()
        listed = asyncio.run(run())
    except ReviewError as exc:
        err.print(str(exc), highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    emit(
        [
            {
                "system": x.system,
                "reference": x.item.reference,
                "ticket_id": x.item.ticket_id,
                "item_id": x.item.item_id,
                "from": x.item.sender,
                "subject": x.item.subject,
                "at": x.item.at,
                "snippet": x.item.snippet,
            }
            for x in listed
        ],
        [
            Column("system", ident=True),
            Column("reference", ident=True),
            Column("at", "received (UTC)"),
            Column("from"),
            Column("subject"),
            Column("snippet", "first words"),
            Column("ticket_id", in_table=False),
            Column("item_id", in_table=False),
        ],
        fmt,
        empty="nothing to review: every vendor case is linked",
    )
    if listed and fmt is Format.table:
        out.print(
            "link one: ticketbridge mail link REFERENCE PSA_TICKET "
            "(or type the reference into the PSA ticket's vendor-reference field)",
            highlight=False,
        )


@mail_app.command("link")
def mail_link(
    reference: Annotated[str, typer.Argument(help="The reference `mail unmatched` shows.")],
    psa_ticket: Annotated[str, typer.Argument(help="The PSA ticket to link it to.")],
    config: ConfigOption = DEFAULT_CONFIG,
    system: Annotated[str | None, typer.Option(help="The vendor system (if several).")] = None,
) -> None:
    """Link a vendor case to PSA ticket N: its reference goes into the PSA ticket's
    vendor-reference field, and the daemon adopts it on the ticket's next read."""
    from ticketbridge.errors import TicketBridgeError
    from ticketbridge.review import ReviewError, link_to_psa
    from ticketbridge.wiring import build_adapters

    cfg = _load(config)
    adapters = build_adapters(cfg)

    async def run() -> Any:
        try:
            return await link_to_psa(
                cfg, adapters, reference=reference, psa_ticket=psa_ticket, system=system
            )
        finally:
            for adapter in adapters.values():
                await adapter.aclose()

    try:
        conn, vendor = asyncio.run(run())
    except (ReviewError, TicketBridgeError) as exc:
        err.print(str(exc), highlight=False)
        raise typer.Exit(1) from None
    out.print(
        f"{conn.psa} ticket {psa_ticket} now refers to {vendor} ({conn.vendor}); "
        "the daemon links it on the ticket's next read",
        highlight=False,
    )


from ticketbridge.cli.config import config_app as _config_app

app.add_typer(_config_app, name="config")
from ticketbridge.cli import timeline as _timeline

app.command("timeline")(_timeline.timeline)
from ticketbridge.cli import reviews as _reviews

app.add_typer(_reviews.app, name="reviews")
from ticketbridge.cli import backfill as _backfill

app.command("backfill")(_backfill.backfill)
app.command("reconcile")(_backfill.reconcile)
from ticketbridge.cli.closeout import closeout_app as _closeout_app

app.add_typer(_closeout_app, name="closeout")
