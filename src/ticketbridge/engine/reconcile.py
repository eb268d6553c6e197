"""Reconcile: compare each open link with both systems and repair what drifted.

Webhooks get lost and a poll reads only what changed after its cursor, so a note whose
announcement never came (a callback dropped on the way, a ticket whose update time the
product did not move) could wait for ever.  A reconcile run walks the open links a page
at a time, one ticket at a time per system, and for each side reads the ticket and its
notes since the newest one the ledger holds (less ``engine.note_overlap``).  A note the
ledger does not know, or a status or priority other than the link's, is drift: the
ticket goes through the engine's normal path (:meth:`Engine.process_ticket`), which
mirrors, carries across and records exactly as a webhook would have made it.

What was recovered is counted (``ticketbridge_reconcile_recovered_total{system,kind}``)
and stored: a ``drift_repaired`` entry in the link's history and a ``reconcile_run``
entry per run (``store.reconcile.totals`` sums them for a dashboard).  Runs respect each
system's request budget: while fewer than ``reconcile.budget_reserve`` of its requests
are free, the run waits, and it ends (the next one continues) when that lasts past
``reconcile.every``.  Notes we wrote and changes younger than ``reconcile.grace`` are
left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from ticketbridge.config import ReconcileConfig
from ticketbridge.domain import Ticket
from ticketbridge.engine.core import Engine
from ticketbridge.errors import AdapterError, PermanentError
from ticketbridge.store import plan as store_plan
from ticketbridge.store import reconcile as rstore
from ticketbridge.store import repo
from ticketbridge.store.rows import LinkRow

__all__ = ["Drift", "ReconcileRun", "Reconciler"]

log = structlog.get_logger("ticketbridge.reconcile")

#: Links read from the store per page.
PAGE = 100


@dataclass(frozen=True, slots=True)
class Drift:
    """What one side of a link holds that the store does not know."""

    system: str
    ticket: Ticket
    #: Ids of the notes the ledger does not hold (people's notes only).
    notes: tuple[str, ...] = ()
    #: Field -> (as the link has it, as the system has it).
    fields: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.notes or self.fields)


@dataclass
class ReconcileRun:
    """One run's figures."""

    links: int = 0
    links_repaired: int = 0
    notes: int = 0
    fields: int = 0
    failed: int = 0
    #: Why the run ended before its last link (``budget``), or ``None``.
    stopped: str | None = None
    #: (system, kind) -> how many were recovered.
    recovered: Counter[tuple[str, str]] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "links": self.links,
            "links_repaired": self.links_repaired,
            "notes": self.notes,
            "fields": self.fields,
            "failed": self.failed,
            "stopped": self.stopped,
        }


class Reconciler:
    """Runs reconciles through one engine; a run continues where the last one ended."""

    def __init__(self, engine: Engine, settings: ReconcileConfig | None = None) -> None:
        self.engine = engine
        self.settings = settings or engine.config.reconcile
        self._after = 0
        self._running = asyncio.Lock()

    async def run(self, *, link_id: int | None = None) -> ReconcileRun:
        """Compare up to ``reconcile.links_per_run`` open links (``link_id``: that one
        only, whatever its state) with both systems and repair their drift."""
        async with self._running:
            return await self._run(link_id)

    async def _run(self, link_id: int | None) -> ReconcileRun:
        run = ReconcileRun()
        deadline = time.monotonic() + float(self.settings.every)
        store = self.engine.store
        if link_id is not None:
            one = await store.run(lambda c: repo.link_by_id(c, link_id))
            if one is not None:
                await self._one(one, run)
        else:
            remaining = self.settings.links_per_run
            while remaining > 0 and run.stopped is None:
                size = min(PAGE, remaining)
                page = await store.run(partial(rstore.open_links, after=self._after, limit=size))
                for link in page:
                    if not await self._budget_allows(link, deadline):
                        run.stopped = "budget"
                        break
                    await self._one(link, run)
                    self._after = link.id
                remaining -= len(page)
                if len(page) < size:
                    if run.stopped is None:
                        self._after = 0  # the end of the list: the next run starts over
                    break

        def record(c: Connection) -> None:
            rstore.record_run(c, run.summary(), self.engine.clock.now())

        await store.run(record)
        metrics = self.engine.metrics
        metrics.reconcile_runs.labels(run.stopped or "done").inc()
        log.info("reconcile_finished", **run.summary())
        if run.links_repaired:
            self.engine.wake.set()
        return run

    async def _budget_allows(self, link: LinkRow, deadline: float) -> bool:
        """Wait until both systems of ``link`` have more than the reserve of their request
        budget free; False when that does not happen before ``deadline``."""
        for system in (link.psa_system, link.vendor_system):
            adapter = self.engine.adapters.get(system)
            budget = None if adapter is None else adapter.http.budget
            if budget is None:
                continue
            need = min(budget.requests, int(budget.requests * self.settings.budget_reserve) + 1)
            while budget.available() < need:
                if time.monotonic() >= deadline:
                    log.info("reconcile_budget_low", system=system, free=budget.available())
                    return False
                await asyncio.sleep(min(1.0, max(0.05, budget.wait_time())))
        return True

    async def _one(self, link: LinkRow, run: ReconcileRun) -> None:
        """Compare one link with both systems and repair what drifted, one side after
        the other; a side that cannot be read is counted and left for the next run."""
        run.links += 1
        self.engine.metrics.reconcile_links.inc()
        repaired = False
        sides = [(link.psa_system, link.psa_ticket_id, True)]
        if link.vendor_ticket_id is not None:
            sides.append((link.vendor_system, link.vendor_ticket_id, False))
        for system, ticket_id, psa in sides:
            try:
                drift = await self.drift(link, system, ticket_id, psa=psa)
                if not drift.found:
                    continue
                repaired |= await self._repair(link, drift, ticket_id, psa=psa, run=run)
            except (AdapterError, PermanentError) as exc:
                run.failed += 1
                log.warning(
                    "reconcile_failed",
                    link_id=link.id,
                    system=system,
                    ticket_ref=ticket_id,
                    error=str(exc),
                )
        if repaired:
            run.links_repaired += 1

    async def drift(self, link: LinkRow, system: str, ticket_id: str, *, psa: bool) -> Drift:
        """Read one side of ``link`` (the ticket, its notes since the newest one handled)
        and say what the store does not know of it."""
        engine = self.engine
        adapter = engine.adapters[system]
        ticket = await adapter.get_ticket(ticket_id)
        seen_until = await engine.store.run(
            lambda c: store_plan.notes_seen_until(c, [link.id], system)
        )
        since = None
        if seen_until is not None:
            since = seen_until - timedelta(seconds=engine.config.engine.note_overlap)
        notes = await adapter.list_notes(ticket_id, since=since)
        settled = engine.clock.now() - timedelta(seconds=float(self.settings.grace))
        people = [n for n in notes if not n.by_us and n.created_at <= settled]

        def look(c: Connection) -> tuple[set[str], LinkRow | None, dict[str, Any]]:
            ids = [n.id for n in people]
            return (
                rstore.known_notes(c, link.id, system, ids),
                repo.link_by_id(c, link.id),
                rstore.last_written(c, link.id, system),
            )

        known, fresh, written = await engine.store.run(look)
        current = fresh or link
        missing = tuple(n.id for n in people if n.id not in known)
        fields: dict[str, tuple[str | None, str | None]] = {}
        young = ticket.updated_at is not None and ticket.updated_at > settled
        if not young:
            side = "psa" if psa else "vendor"
            for name in ("status", "priority"):
                stored = getattr(current, f"{side}_{name}")
                now_is = getattr(ticket, name)
                # our own write is not drift: its echo may never be read
                ours = now_is is not None and (
                    now_is == written.get(name)
                    or (name == "status" and now_is == getattr(current, f"{side}_status_written"))
                )
                if now_is != stored and not ours:
                    fields[name] = (stored, now_is)
        return Drift(system, ticket, missing, fields)

    async def _repair(
        self, link: LinkRow, drift: Drift, ticket_id: str, *, psa: bool, run: ReconcileRun
    ) -> bool:
        """Run the ticket through the engine's normal path; count and record what the
        store holds afterwards that it did not before.  True when anything was recovered."""
        engine = self.engine
        await engine.process_ticket(
            drift.system, ticket_id, trigger="reconcile", ticket=drift.ticket
        )
        side = "psa" if psa else "vendor"

        def check(c: Connection) -> tuple[set[str], LinkRow | None]:
            return (
                rstore.known_notes(c, link.id, drift.system, list(drift.notes)),
                repo.link_by_id(c, link.id),
            )

        known, fresh = await engine.store.run(check)
        notes = [note for note in drift.notes if note in known]
        fields = {
            name: values
            for name, values in drift.fields.items()
            if fresh is not None and getattr(fresh, f"{side}_{name}") == values[1]
        }
        if not notes and not fields:
            return False
        metric = engine.metrics.reconcile_recovered
        if notes:
            metric.labels(drift.system, "note").inc(len(notes))
        for name in fields:
            metric.labels(drift.system, name).inc()
        run.notes += len(notes)
        run.fields += len(fields)
        detail: dict[str, Any] = {"notes": notes}
        detail.update({name: {"old": old, "new": new} for name, (old, new) in fields.items()})

        def record(c: Connection) -> None:
            rstore.record_repair(c, link, drift.system, ticket_id, detail, engine.clock.now())

        await engine.store.run(record)
        log.warning(
            "drift_repaired",
            link_id=link.id,
            psa_ticket=link.psa_number or link.psa_ticket_id,
            system=drift.system,
            ticket_ref=ticket_id,
            notes=len(notes),
            fields=sorted(fields),
            hint="a change no webhook or poll brought: check the system's webhook delivery",
        )
        return True
