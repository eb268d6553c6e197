"""``ticketbridge timeline PSA_TICKET``: one ticket's whole story across both systems."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ticketbridge.cli.output import Column, Format, FormatOption, emit

__all__ = ["timeline"]

COLUMNS = [
    Column("at"),
    Column("side"),
    Column("system", ident=True),
    Column("kind"),
    Column("summary"),
    Column("detail"),
]


def timeline(
    psa_ticket: Annotated[str, typer.Argument(help="The PSA ticket's number or id.")],
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="The YAML configuration file.", envvar="TICKETBRIDGE_CONFIG"
        ),
    ] = Path("config/ticketbridge.yaml"),
    connection: Annotated[
        str | None,
        typer.Option(help="Only the link of this connection (a ticket linked in several)."),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """The merged timeline of a linked (or watched) PSA ticket, in time order (UTC): notes
    both ways and what became of them, status and priority changes, the supplier SLA
    clock, escalation steps with the rule that fired, writes and their outcomes, dead
    letters, breach investigations, lessons learned."""
    from ticketbridge.cli import _load, err
    from ticketbridge.store import Store
    from ticketbridge.timeline import build_timeline, find_links

    cfg = _load(config)
    if connection is not None and connection not in {c.name for c in cfg.connections}:
        names = ", ".join(sorted(c.name for c in cfg.connections))
        err.print(f"--connection: no connection {connection!r} (configured: {names})")
        raise typer.Exit(2)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        with store.tx() as c:
            links = find_links(c, psa_ticket, connection=connection)
            stories = [(link, build_timeline(c, link.id)) for link in links]
    finally:
        store.close()
    if not stories:
        where = f" in connection {connection!r}" if connection else ""
        err.print(
            f"no link for PSA ticket {psa_ticket!r}{where}: give its number or id as "
            "`ticketbridge links list` shows it"
        )
        raise typer.Exit(1)
    rows: list[dict[str, Any]] = []
    for link, entries in stories:
        for entry in entries:
            row = entry.to_dict()
            row["link"] = link.id
            row["connection"] = link.connection
            row["psa_ticket"] = link.psa_number or link.psa_ticket_id
            row["vendor_ticket"] = link.vendor_number or link.vendor_ticket_id
            rows.append(row)
    if fmt is Format.table:
        for link, _ in stories:
            err.print(
                f"link {link.id} ({link.connection}): PSA ticket "
                f"{link.psa_number or link.psa_ticket_id} <-> vendor ticket "
                f"{link.vendor_number or link.vendor_ticket_id or '-'}, {link.state}; "
                "times in UTC",
                highlight=False,
            )
        emit(rows, [Column("at"), Column("side"), Column("kind"), Column("summary")], fmt)
        return
    heads = [
        Column("link", ident=True),
        Column("connection"),
        Column("psa_ticket", ident=True),
        Column("vendor_ticket", ident=True),
    ]
    emit(rows, [*heads, *COLUMNS], fmt)
