"""Backfill checkpoints: where the adoption of existing linked tickets stands.

A backfill walks the PSA's changed-ticket listing in its keyset order ``(updated_at, id)``
and saves, in the transaction that records each ticket's adoption, the keyset of that
ticket: an interrupted run continues right after the last ticket it finished, so nothing
is done twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ticketbridge.store import plan as store_plan
from ticketbridge.store.tables import backfill_checkpoints
from ticketbridge.store.upsert import upsert

if TYPE_CHECKING:
    from ticketbridge.plan import NewLink

__all__ = [
    "Checkpoint",
    "checkpoint",
    "put_link_unless_linked",
    "save_checkpoint",
    "start_checkpoint",
]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One scope's backfill: its window's start, the last ticket finished, its counts."""

    scope: str
    since_at: datetime
    resume_at: datetime | None
    resume_after: str | None
    counts: Mapping[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


def checkpoint(c: Connection, scope: str) -> Checkpoint | None:
    """The scope's checkpoint, or ``None`` when it never ran."""
    row = c.execute(
        sa.select(backfill_checkpoints).where(backfill_checkpoints.c.scope == scope)
    ).first()
    if row is None:
        return None
    return Checkpoint(
        scope=row.scope,
        since_at=row.since_at,
        resume_at=row.resume_at,
        resume_after=row.resume_after,
        counts=dict(row.counts or {}),
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def start_checkpoint(c: Connection, scope: str, since_at: datetime, now: datetime) -> Checkpoint:
    """A new run of ``scope`` from ``since_at``, replacing a finished (or abandoned) one."""
    values: dict[str, Any] = {
        "scope": scope,
        "since_at": since_at,
        "resume_at": None,
        "resume_after": None,
        "counts": {},
        "started_at": now,
        "updated_at": now,
        "finished_at": None,
    }
    upsert(c, backfill_checkpoints, values, on=["scope"])
    return Checkpoint(scope, since_at, None, None, {}, now, None)


def save_checkpoint(
    c: Connection,
    scope: str,
    *,
    resume_at: datetime | None,
    resume_after: str | None,
    counts: Mapping[str, int],
    now: datetime,
    finished: bool = False,
) -> None:
    """Record the last ticket finished (in the transaction that recorded its adoption)."""
    c.execute(
        sa.update(backfill_checkpoints)
        .where(backfill_checkpoints.c.scope == scope)
        .values(
            resume_at=resume_at,
            resume_after=resume_after,
            counts=dict(counts),
            updated_at=now,
            finished_at=now if finished else None,
        )
    )


def put_link_unless_linked(c: Connection, new: NewLink) -> int | None:
    """Store an adopted link; ``None`` when another writer (the daemon) linked the same PSA
    ticket in that connection first (the caller's transaction goes on without it)."""
    try:
        with c.begin_nested():
            return store_plan.put_link(c, new)
    except IntegrityError:
        return None
