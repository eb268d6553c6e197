"""One link's history for its page: ``ticketbridge.timeline.build_timeline`` when that
module is installed, else this small merge of the link's audit events, note ledger and
outbox rows in time order.  Both give entries with ``at``, ``system``, ``kind``,
``summary`` and ``detail``, so the page renders either."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from ticketbridge.store import dashboard as queries

__all__ = ["Entry", "link_timeline"]


@dataclass(frozen=True)
class Entry:
    at: datetime
    system: str | None
    kind: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


def link_timeline(conn: Connection, link_id: int) -> list[Any]:
    """The link's entries, oldest first."""
    try:
        module = importlib.import_module("ticketbridge.timeline")
    except ImportError:
        return _from_rows(conn, link_id)
    entries: list[Any] = module.build_timeline(conn, link_id)
    return entries


def _from_rows(conn: Connection, link_id: int) -> list[Entry]:
    found, notes, writes = queries.link_history(conn, link_id)
    entries = [
        Entry(
            at=e.occurred_at or e.recorded_at,
            system=e.system,
            kind=e.kind,
            summary=e.kind.replace("_", " "),
            detail=dict(e.detail),
        )
        for e in found
    ]
    for n in notes:
        reason = f" ({n.reason})" if n.reason else ""
        entries.append(
            Entry(
                at=n.source_created_at,
                system=n.source_system,
                kind=f"note_{n.state}",
                summary=f"note {n.source_note_id} to {n.target_system}: {n.state}{reason}",
                detail={"target note": n.target_note_id, "key": n.key},
            )
        )
    for w in writes:
        detail: dict[str, Any] = {"attempts": w.attempts, "key": w.key}
        if w.last_error:
            detail["error"] = w.last_error
        entries.append(
            Entry(
                at=w.created_at,
                system=w.target_system,
                kind=f"write_{w.state}",
                summary=f"{w.operation.replace('_', ' ')} to {w.target_system}: {w.state}",
                detail=detail,
            )
        )
    return sorted(entries, key=lambda e: e.at)
