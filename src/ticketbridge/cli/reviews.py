"""``ticketbridge reviews list|show|close``: post-incident reviews (lessons learned and
breach investigations) as documents."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ticketbridge.cli.output import Column, Format, FormatOption, emit

__all__ = ["app"]

app = typer.Typer(
    help="Post-incident reviews: lessons learned (LL-<n>) and breach investigations "
    "(BI-<n>) as Markdown or HTML documents.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The YAML configuration file.", envvar="TICKETBRIDGE_CONFIG"
    ),
]


class ReviewState(StrEnum):
    open = "open"
    closed = "closed"


class ReviewKind(StrEnum):
    lessons = "lessons"
    investigations = "investigations"


class DocFormat(StrEnum):
    md = "md"
    html = "html"


@app.command("list")
def reviews_list(
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    state: Annotated[ReviewState | None, typer.Option(help="Only reviews in this state.")] = None,
    kind: Annotated[ReviewKind | None, typer.Option(help="Only reviews of this kind.")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Every review with its ticket and state, oldest first."""
    from ticketbridge.cli import _load
    from ticketbridge.store import Store, repo
    from ticketbridge.store.timeline import list_investigations, list_lessons

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    wanted = state.value if state else None
    rows: list[dict[str, Any]] = []
    try:
        with store.tx() as c:
            links = {link.id: link for link in repo.list_links(c)}
            if kind in (None, ReviewKind.lessons):
                for lesson in list_lessons(c, state=wanted):
                    rows.append(_row(f"LL-{lesson.id}", "lessons learned", lesson, lesson.summary))
            if kind in (None, ReviewKind.investigations):
                for inv in list_investigations(c, state=wanted):
                    what = f"{inv.metric.replace('_', ' ')} target missed ({inv.contract})"
                    rows.append(_row(f"BI-{inv.id}", "breach investigation", inv, what))
    finally:
        store.close()
    for row in rows:
        link = links.get(row["link"])
        row["psa_ticket"] = link and (link.psa_number or link.psa_ticket_id)
        row["vendor_ticket"] = link and (link.vendor_number or link.vendor_ticket_id)
    rows.sort(key=lambda r: (r["opened_at"], r["id"]))
    emit(
        rows,
        [
            Column("id", ident=True),
            Column("kind"),
            Column("state"),
            Column("link", ident=True),
            Column("psa_ticket", "PSA ticket", ident=True),
            Column("vendor_ticket", "vendor ticket", ident=True),
            Column("summary"),
            Column("opened_at", "opened (UTC)"),
            Column("closed_at", "closed (UTC)"),
        ],
        fmt,
        empty="no reviews",
    )


def _row(review_id: str, kind: str, record: Any, summary: str) -> dict[str, Any]:
    return {
        "id": review_id,
        "kind": kind,
        "state": record.state,
        "link": record.link_id,
        "summary": summary,
        "opened_at": record.opened_at,
        "closed_at": record.closed_at,
    }


@app.command("show")
def reviews_show(
    review_id: Annotated[str, typer.Argument(help="The review: LL-<n> or BI-<n>.")],
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    fmt: Annotated[
        DocFormat, typer.Option("--format", "-f", help="md (Markdown) or html.")
    ] = DocFormat.md,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the document to this file.")
    ] = None,
) -> None:
    """The review as a document: what happened when (UTC), the vendor's times against the
    contract, escalations, whose move it was, and the review checklist."""
    from ticketbridge.cli import _load, err
    from ticketbridge.clock import utcnow
    from ticketbridge.incident_review import (
        ReviewIdError,
        build_review,
        policy_lookup,
        render,
    )
    from ticketbridge.store import Store

    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        with store.tx() as c:
            review = build_review(c, review_id, now=utcnow(), policy=policy_lookup(cfg))
    except ReviewIdError as exc:
        err.print(str(exc), highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if review is None:
        err.print(f"review {review_id} not found: `ticketbridge reviews list` shows them")
        raise typer.Exit(1)
    document = render(review, fmt.value)
    if output is None:
        sys.stdout.write(document)  # as it is: no console markup, emoji codes or wrapping
        return
    output.write_text(document, encoding="utf-8")
    err.print(f"{review.id} written to {output}", highlight=False)


@app.command("close")
def reviews_close(
    review_id: Annotated[str, typer.Argument(help="The review: LL-<n> or BI-<n>.")],
    config: ConfigOption = Path("config/ticketbridge.yaml"),
    findings: Annotated[
        str | None, typer.Option(help="What the review found (kept with the record).")
    ] = None,
) -> None:
    """Close a review once its meeting is held, with what it found."""
    from ticketbridge.cli import _load, err, out
    from ticketbridge.clock import utcnow
    from ticketbridge.incident_review import ReviewIdError, close_review, parse_review_id
    from ticketbridge.store import Store

    try:
        parse_review_id(review_id)
    except ReviewIdError as exc:
        err.print(str(exc), highlight=False)
        raise typer.Exit(2) from None
    cfg = _load(config)
    store = Store(cfg.store.url, password=cfg.store.password)
    try:
        with store.tx() as c:
            done = close_review(c, review_id, now=utcnow(), findings=findings)
    finally:
        store.close()
    if done is None:
        err.print(f"review {review_id} not found: `ticketbridge reviews list` shows them")
        raise typer.Exit(1)
    if not done:
        err.print(f"review {review_id} is already closed")
        raise typer.Exit(1)
    out.print(f"review {review_id.upper()} closed", highlight=False)
