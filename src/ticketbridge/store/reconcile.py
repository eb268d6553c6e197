"""What the reconcile reads and records: open links a page at a time, which notes of a
side the ledger already knows, and the repairs and runs it made (audit events, so the
dashboard and a link's timeline show them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store import repo
from ticketbridge.store.rows import LinkRow, from_row
from ticketbridge.store.tables import events, ledger, links

__all__ = [
    "DRIFT_REPAIRED",
    "RECONCILE_RUN",
    "ReconcileTotals",
    "known_notes",
    "last_written",
    "open_links",
    "record_repair",
    "record_run",
    "totals",
]

#: The history entry of a link whose drift a reconcile repaired.
DRIFT_REPAIRED = "drift_repaired"
#: The entry (on no link) that sums up one reconcile run.
RECONCILE_RUN = "reconcile_run"


def open_links(c: Connection, *, after: int, limit: int) -> list[LinkRow]:
    """Open links with a vendor ticket, by id after ``after`` (a page)."""
    rows = c.execute(
        sa.select(links)
        .where(
            links.c.state == "open",
            links.c.vendor_ticket_id.is_not(None),
            links.c.id > after,
        )
        .order_by(links.c.id)
        .limit(limit)
    )
    return [from_row(LinkRow, row) for row in rows]


def known_notes(c: Connection, link_id: int, side: str, note_ids: Sequence[str]) -> set[str]:
    """Which of ``note_ids`` (notes of ``side``) the link's ledger holds: as a note seen
    there, or as a copy we wrote there."""
    if not note_ids:
        return set()
    found: set[str] = set()
    for chunk in range(0, len(note_ids), 500):
        ids = list(note_ids[chunk : chunk + 500])
        rows = c.execute(
            sa.select(
                ledger.c.source_system, ledger.c.source_note_id, ledger.c.target_note_id
            ).where(
                ledger.c.link_id == link_id,
                sa.or_(
                    sa.and_(ledger.c.source_system == side, ledger.c.source_note_id.in_(ids)),
                    sa.and_(ledger.c.target_system == side, ledger.c.target_note_id.in_(ids)),
                ),
            )
        )
        for source, source_id, target_id in rows:
            found.add(source_id if source == side else target_id)
    return found


#: The history entry of a field write the dispatcher made (``engine.dispatch``).
TICKET_UPDATED = "ticket_updated"


def last_written(c: Connection, link_id: int, system: str) -> dict[str, Any]:
    """The value ticketbridge last wrote to each field of the link's ticket on ``system``
    (from the link's ``ticket_updated`` history; the newest 50 writes are looked at)."""
    rows = c.execute(
        sa.select(events.c.detail)
        .where(
            events.c.link_id == link_id,
            events.c.kind == TICKET_UPDATED,
            events.c.system == system,
        )
        .order_by(events.c.id.desc())
        .limit(50)
    )
    written: dict[str, Any] = {}
    for (detail,) in rows:
        for name, value in (detail or {}).items():
            written.setdefault(name, value)
    return written


def record_repair(
    c: Connection,
    link: LinkRow,
    system: str,
    ticket_id: str,
    detail: Mapping[str, Any],
    now: datetime,
) -> None:
    """A link's drift on ``system``, repaired: into its history."""
    repo.add_event(
        c,
        DRIFT_REPAIRED,
        now=now,
        link_id=link.id,
        connection=link.connection,
        system=system,
        ticket_id=ticket_id,
        **dict(detail),
    )


def record_run(c: Connection, detail: Mapping[str, Any], now: datetime) -> None:
    """One run's figures (links compared, repaired, what was recovered)."""
    repo.add_event(c, RECONCILE_RUN, now=now, **dict(detail))


@dataclass(frozen=True, slots=True)
class ReconcileTotals:
    """What reconciles recovered since ``since``, and the last run's figures."""

    runs: int
    links_repaired: int
    notes: int
    fields: int
    last_run_at: datetime | None
    last_run: Mapping[str, Any] | None


def totals(c: Connection, *, since: datetime | None = None) -> ReconcileTotals:
    """The reconcile's figures for a dashboard: runs, links repaired and what they
    recovered (notes; statuses and priorities), and the last run."""
    runs = sa.select(events.c.detail, events.c.recorded_at).where(events.c.kind == RECONCILE_RUN)
    if since is not None:
        runs = runs.where(events.c.recorded_at >= since)
    rows = c.execute(runs.order_by(events.c.id)).all()
    notes = fields = repaired = 0
    for detail, _at in rows:
        notes += int(detail.get("notes", 0))
        fields += int(detail.get("fields", 0))
        repaired += int(detail.get("links_repaired", 0))
    last = rows[-1] if rows else None
    return ReconcileTotals(
        runs=len(rows),
        links_repaired=repaired,
        notes=notes,
        fields=fields,
        last_run_at=last[1] if last else None,
        last_run=dict(last[0]) if last else None,
    )
