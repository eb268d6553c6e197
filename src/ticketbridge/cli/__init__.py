"""The ``ticketbridge`` command line.  Thin: every command calls into the package."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ticketbridge import __version__
from ticketbridge.cli.output import Column, Format, FormatOption, emit
from ticketbridge.config import TicketBridgeConfig, load_config
from ticketbridge.errors import ConfigError, StoreError

__all__ = ["app", "main"]

app = typer.Typer(
    name="ticketbridge",
    help="Bridge MSP PSA tickets to vendor tickets: notes both ways, SLA clocks, escalations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="State store maintenance.", no_args_is_help=True)
outbox_app = typer.Typer(help="Inspect and replay queued writes.", no_args_is_help=True)
sla_app = typer.Typer(help="Supplier SLA scorecards and clock repair.", no_args_is_help=True)
rules_app = typer.Typer(help="Explain and rehearse escalation rules.", no_args_is_help=True)
links_app = typer.Typer(help="Linked tickets and their supplier SLA state.", no_args_is_help=True)
mail_app = typer.Typer(
    help="The review list: vendor cases no link holds (mail to our mailbox about a case we "
    "did not open), and linking them to PSA tickets.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(sla_app, name="sla")
app.add_typer(rules_app, name="rules")
app.add_typer(links_app, name="links")
app.add_typer(mail_app, name="mail")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The YAML configuration file.", envvar="TICKETBRIDGE_CONFIG"
    ),
]


def _load(path: Path) -> TicketBridgeConfig:
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
    """Print the version."""
    out.print(__version__)


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
) -> None:
    """Validate a configuration file: exit 0 when sound, 2 listing every problem."""
    config = _load(file)
    if online:
        from ticketbridge.namecheck import online_check

        report = asyncio.run(online_check(config))
        for note in report.notes:
            out.print(f"[dim]note: {note}[/]", highlight=False)
        if report.problems:
            _print_problems(file, ConfigError(report.problems))
            raise typer.Exit(2)
    out.print(
        f"[green]{file}: OK[/] — {len(config.systems)} system(s), "
        f"{len(config.connections)} connection(s)" + (", names checked online" if online else ""),
        highlight=False,
    )


@app.command()
def run(config: ConfigOption = Path("config/ticketbridge.yaml")) -> None:
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
def db_upgrade(config: ConfigOption = Path("config/ticketbridge.yaml")) -> None:
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
    config: ConfigOption = Path("config/ticketbridge.yaml"),
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
    config: ConfigOption = Path("config/ticketbridge.yaml"),
) -> None:
    """Put a dead-lettered write back in line."""
    _outbox_change(config, row_id, "retry")


@outbox_app.command("cancel")
def outbox_cancel(
    row_id: Annotated[int, typer.Argument(help="The outbox row to give up on.")],
    config: ConfigOption = Path("config/ticketbridge.yaml"),
) -> None:
    """Give up on a write (it stops blocking later writes of its ticket)."""
    _outbox_change(config, row_id, "cancel")


def _outbox_change(config: Path, row_id: int, action: str) -> None:
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
    finally:
        store.close()
    if not done:
        err.print(f"outbox row {row_id} is not in a state that allows {action}")
        raise typer.Exit(1)
    out.print(f"outbox row {row_id}: {action} done")


@sla_app.command("report")
def sla_report(
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    since: Annotated[str, typer.Option(help="How far back: 90d, 12w, 24h ...")] = "90d",
    vendor: Annotated[str | None, typer.Option(help="Only this vendor system.")] = None,
    client: Annotated[str | None, typer.Option(help="Only this PSA company.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or html.")] = "table",
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Supplier scorecard per vendor and priority from the store."""
    from datetime import timedelta

    from ticketbridge.clock import utcnow
    from ticketbridge.config import parse_duration
    from ticketbridge.report import collect, render_csv, render_html, render_json, render_table
    from ticketbridge.store import Store

    if fmt not in ("table", "csv", "json", "html"):
        err.print(f"unknown format {fmt!r}: use table, csv, json or html")
        raise typer.Exit(2)
    try:
        window = timedelta(seconds=parse_duration(since))
    except ValueError as exc:
        err.print(f"--since: {exc}")
        raise typer.Exit(2) from None
    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        now = utcnow()
        report = collect(store, cfg, since=now - window, now=now, vendor=vendor, client=client)
    finally:
        store.close()
    if fmt == "table":
        if output is not None:
            err.print("--output needs --format csv, json or html")
            raise typer.Exit(2)
        out.print(render_table(report))
        return
    text = {"csv": render_csv, "json": render_json, "html": render_html}[fmt](report)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


@sla_app.command("repair")
def sla_repair(
    config: ConfigOption = Path("config/ticketbridge.yaml"),
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


def _offline_engine(cfg: TicketBridgeConfig) -> tuple[Any, Any]:
    """An engine on the configured store that makes no API calls (explain, simulate)."""
    from ticketbridge.clock import SystemClock
    from ticketbridge.engine import Engine
    from ticketbridge.metrics import Metrics
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    if cfg.rules.directory is None:
        err.print("no rules configured (rules.directory)")
        raise typer.Exit(2)
    store = Store(cfg.store.url, password=cfg.store.password)
    return store, Engine(cfg, store, build_adapters(cfg), Metrics(), SystemClock())


@rules_app.command("explain")
def rules_explain(
    psa_ticket: Annotated[str, typer.Argument(help="The PSA ticket id or number.")],
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    at: Annotated[
        str | None,
        typer.Option(help="Explain as of this time (ISO 8601, UTC if no zone); default now."),
    ] = None,
) -> None:
    """Which rules match a ticket, which conditions fail and why, what fires next and when."""
    from ticketbridge.clock import utcnow
    from ticketbridge.store import repo
    from ticketbridge.store.rules import links_rules_act_on

    cfg = _load(config)
    when = _parse_at(at) if at else utcnow()
    store, engine = _offline_engine(cfg)
    try:
        with store.tx() as c:
            found = links_rules_act_on(c, psa_ticket=psa_ticket)
            if not found:
                known = [
                    link
                    for link in repo.list_links(c)
                    if psa_ticket in (link.psa_ticket_id, link.psa_number)
                ]
                if known:
                    states = ", ".join(sorted({link.state for link in known}))
                    err.print(
                        f"ticket {psa_ticket!r} is {states} with no rule step pending: "
                        "the rules no longer act on it"
                    )
                else:
                    err.print(f"no linked or watched ticket {psa_ticket!r} in the store")
                raise typer.Exit(1)
            for link in found:
                explanation = engine.rules.explain(c, link, when)
                out.print(explanation.render(), highlight=False, markup=False)
    finally:
        store.close()


@rules_app.command("simulate")
def rules_simulate(
    at: Annotated[str, typer.Option(help='When, e.g. "2026-12-01T09:00" (UTC if no zone).')],
    config: ConfigOption = Path("config/ticketbridge.yaml"),
) -> None:
    """Dry-run every rule as if it were AT over every ticket the rules can act on (watched,
    open, or with a rule step pending; the tickets `rules explain` covers); nothing is
    written or sent."""
    from ticketbridge.rules import simulate
    from ticketbridge.store.rules import links_rules_act_on

    cfg = _load(config)
    when = _parse_at(at)
    store, engine = _offline_engine(cfg)
    try:
        with store.tx() as c:
            links = links_rules_act_on(c)
            facts = [engine.rules.facts(c, link, when) for link in links]
            states = {str(link.id): engine.rules.state_of(c, link.id) or {} for link in links}
        assert engine.rules.ruleset is not None
        result = simulate(engine.rules.ruleset, facts, when, states)
    finally:
        store.close()
    out.print(result.render(), highlight=False, markup=False)


def _parse_at(text: str) -> Any:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"--at: {text!r} is not an ISO 8601 date-time, e.g. 2026-12-01T09:00")
        raise typer.Exit(2) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LinkState(StrEnum):
    watching = "watching"
    creating = "creating"
    open = "open"
    closed = "closed"


@links_app.command("list")
def links_list(
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    state: Annotated[LinkState | None, typer.Option(help="Only links in this state.")] = None,
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
        ],
        fmt,
        empty="no links",
    )


def main() -> None:
    app(prog_name="ticketbridge")


@mail_app.command("unmatched")
def mail_unmatched(
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    system: Annotated[str | None, typer.Option(help="Only this vendor system.")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Vendor cases no link holds yet (never dropped): link one with `mail link`."""
    import json

    from ticketbridge.review import ReviewError, unmatched
    from ticketbridge.store import Store
    from ticketbridge.wiring import build_adapters

    if output not in ("table", "json"):
        err.print(f"--format must be table or json, not {output!r}")
        raise typer.Exit(2)
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
    if output == "json":
        rows = [
            {
                "system": x.system,
                "reference": x.item.reference,
                "ticket_id": x.item.ticket_id,
                "item_id": x.item.item_id,
                "from": x.item.sender,
                "subject": x.item.subject,
                "at": x.item.at.isoformat(),
                "snippet": x.item.snippet,
            }
            for x in listed
        ]
        out.print_json(json.dumps(rows))
        return
    if not listed:
        out.print("nothing to review: every vendor case is linked")
        return
    table = Table("system", "reference", "received (UTC)", "from", "subject", "first words")
    for x in listed:
        table.add_row(
            x.system,
            x.item.reference,
            f"{x.item.at:%Y-%m-%d %H:%M}",
            x.item.sender,
            x.item.subject,
            x.item.snippet[:80],
        )
    out.print(table)
    out.print(
        "link one: ticketbridge mail link REFERENCE PSA_TICKET "
        "(or type the reference into the PSA ticket's vendor-reference field)"
    )


@mail_app.command("link")
def mail_link(
    reference: Annotated[str, typer.Argument(help="The reference `mail unmatched` shows.")],
    psa_ticket: Annotated[str, typer.Argument(help="The PSA ticket to link it to.")],
    config: ConfigOption = Path("config/ticketbridge.yaml"),
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


from ticketbridge.cli.closeout import closeout_app as _closeout_app

app.add_typer(_closeout_app, name="closeout")
