"""``ticketbridge rules``: explain a ticket's rules, rehearse them all at a given time.

Both print prose by default (the explanation reads top to bottom); ``--format table``,
``json`` or ``csv`` give the same facts as rows: one per rule and link for ``explain``, one
per chain start, stop or action for ``simulate``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ticketbridge.cli import DEFAULT_CONFIG, ConfigOption, _load, err, out
from ticketbridge.cli.output import Column, TextFormat, TextFormatOption, emit

if TYPE_CHECKING:
    from ticketbridge.config import TicketBridgeConfig
    from ticketbridge.rules import Explanation, Simulation

__all__ = ["app"]

app: typer.Typer = typer.Typer(help="Explain and rehearse escalation rules.", no_args_is_help=True)


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


EXPLAIN_COLUMNS = [
    Column("link", ident=True),
    Column("rule", ident=True),
    Column("source"),
    Column("matches"),
    Column("chain"),
    Column("failing", "failing conditions"),
    Column("fired_now", "fired now"),
    Column("next_at", "next run (UTC)"),
    Column("next", "next actions"),
    Column("would_start_at", "would start (UTC)"),
    Column("tier", in_table=False),
    Column("escalation_level", in_table=False),
    Column("upcoming", in_table=False),
]


def explanation_rows(explanation: Explanation) -> list[dict[str, Any]]:
    """One row per rule: whether it matches, why not, its chain, and what fires next."""
    rows = []
    for report in explanation.rules:
        upcoming = [
            {
                "run": f"{up.run.label} #{up.run.key.repetition}",
                "at": up.run.due_at,
                "actions": list(up.actions),
            }
            for up in report.upcoming
        ]
        first = report.upcoming[0] if report.upcoming else None
        rows.append(
            {
                "link": explanation.link_id,
                "rule": report.name,
                "source": report.source,
                "matches": report.matched,
                "chain": report.chain,
                "failing": [leaf.reason for leaf in report.conditions.failed()],
                "fired_now": list(report.fired_now),
                "next_at": None if first is None else first.run.due_at,
                "next": None if first is None else "; ".join(first.actions),
                "would_start_at": report.would_start_at,
                "tier": explanation.tier,
                "escalation_level": explanation.escalation.level,
                "upcoming": upcoming,
            }
        )
    return rows


SIMULATE_COLUMNS = [
    Column("link", ident=True),
    Column("rule", ident=True),
    Column("run", ident=True),
    Column("event"),
    Column("detail"),
]


def simulation_rows(simulation: Simulation) -> list[dict[str, Any]]:
    """One row per chain start, chain stop, action and failed action, link by link."""
    from ticketbridge.rules.engine import describe_intent

    rows: list[dict[str, Any]] = []
    for e in simulation.evaluations:
        for start in e.started:
            rows.append(
                {
                    "link": e.link_id,
                    "rule": start.rule,
                    "run": None,
                    "event": "starts",
                    "detail": f"epoch {start.epoch}",
                }
            )
        for stop in e.stopped:
            rows.append(
                {
                    "link": e.link_id,
                    "rule": stop.rule,
                    "run": None,
                    "event": "stops",
                    "detail": f"{stop.reason} at {stop.at:%Y-%m-%d %H:%M}",
                }
            )
        for intent in e.intents:
            rows.append(
                {
                    "link": e.link_id,
                    "rule": intent.rule,
                    "run": str(intent.run),
                    "event": "action",
                    "detail": describe_intent(intent),
                }
            )
        for failed in e.failed:
            rows.append(
                {
                    "link": e.link_id,
                    "rule": failed.rule,
                    "run": str(failed.run),
                    "event": "failed",
                    "detail": describe_intent(failed),
                }
            )
    return rows


@app.command("explain")
def rules_explain(
    psa_ticket: Annotated[str, typer.Argument(help="The PSA ticket id or number.")],
    config: ConfigOption = DEFAULT_CONFIG,
    at: Annotated[
        str | None,
        typer.Option(help="Explain as of this time (ISO 8601, UTC if no zone); default now."),
    ] = None,
    fmt: TextFormatOption = TextFormat.text,
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
            explanations = [engine.rules.explain(c, link, when) for link in found]
    finally:
        store.close()
    if fmt is TextFormat.text:
        for explanation in explanations:
            out.print(explanation.render(), highlight=False, markup=False)
        return
    if fmt is not TextFormat.table:
        emit([r for x in explanations for r in explanation_rows(x)], EXPLAIN_COLUMNS, fmt)
        return
    for explanation in explanations:
        out.print(explanation.render().splitlines()[0], highlight=False, markup=False)
        emit(explanation_rows(explanation), EXPLAIN_COLUMNS, fmt)


@app.command("simulate")
def rules_simulate(
    at: Annotated[str, typer.Option(help='When, e.g. "2026-12-01T09:00" (UTC if no zone).')],
    config: ConfigOption = DEFAULT_CONFIG,
    fmt: TextFormatOption = TextFormat.text,
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
    if fmt is TextFormat.text:
        out.print(result.render(), highlight=False, markup=False)
        return
    if fmt is TextFormat.table:
        out.print(result.render().splitlines()[0], highlight=False, markup=False)
    emit(simulation_rows(result), SIMULATE_COLUMNS, fmt, empty="nothing would run")


def _parse_at(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"--at: {text!r} is not an ISO 8601 date-time, e.g. 2026-12-01T09:00")
        raise typer.Exit(2) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
