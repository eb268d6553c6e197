"""Backfill: adopt the linked tickets that exist before ticketbridge knew of them.

An MSP that starts ticketbridge (or starts it again on a fresh store) already has PSA
tickets naming a vendor ticket in their vendor-reference field, with notes on both
sides.  :class:`Backfill` walks the PSA's changed-ticket listing since a moment (the
adapter's ``changes_after`` keyset paging, one page at a time, oldest first), and for
each ticket that names a vendor ticket the connection's vendor can find, reads both
tickets' notes and adopts the pair (:mod:`ticketbridge.engine.adopt`): a link and its
ledger, in one transaction with the run's checkpoint.  Nothing is queued, so nothing is
posted; the daemon carries on from there as if it had mirrored the history itself.

Resumable: each ticket's adoption and the checkpoint (the ticket's keyset) commit
together, so an interrupted run continues right after the last ticket it finished, and
a ticket listed again (updated meanwhile) is already linked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.engine import Connection

from ticketbridge.adapters.base import Capability, TicketAdapter
from ticketbridge.clock import Clock
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig
from ticketbridge.domain import Note, Ticket, TicketChange
from ticketbridge.engine import adopt, identity
from ticketbridge.errors import AuthFailedError, CapabilityError, PermanentError
from ticketbridge.store import Store, repo
from ticketbridge.store import backfill as checkpoints
from ticketbridge.store import plan as store_plan
from ticketbridge.store.rows import LinkRow

__all__ = ["Backfill", "BackfillError", "BackfillRun", "Progress", "scope_of"]

log = structlog.get_logger("ticketbridge.backfill")

#: The counts a run keeps (and its checkpoint stores), in the order they are shown.
COUNTS = (
    "read",
    "adopted",
    "already_linked",
    "no_reference",
    "not_found",
    "skipped",
    "notes_matched",
    "notes_seen",
    "notes_ours",
)


class BackfillError(Exception):
    """A backfill that cannot run as asked (the message says what to change)."""


@dataclass
class BackfillRun:
    """What one scope's run did (the counts include earlier runs it continued)."""

    scope: str
    since_at: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    resumed: bool = False
    finished: bool = False


#: Called after each ticket: the run so far and the ticket just finished.
Progress = Callable[[BackfillRun, str], None]


def scope_of(psa: str, connections: Sequence[ConnectionConfig]) -> str:
    """The checkpoint's name: the PSA system and the connections adopted into."""
    return f"{psa}:{','.join(sorted(conn.name for conn in connections))}"


class Backfill:
    """Adopts linked tickets of the configured connections (see the module docstring)."""

    def __init__(
        self,
        config: TicketBridgeConfig,
        store: Store,
        adapters: dict[str, TicketAdapter],
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.adapters = adapters
        self.clock = clock
        self._secret: str | None = None

    def plan(self, connection: str | None = None) -> dict[str, list[ConnectionConfig]]:
        """The connections to adopt into, per PSA system (``connection``: only that one)."""
        chosen = [
            conn
            for conn in self.config.connections
            if connection is None or conn.name == connection
        ]
        if not chosen:
            known = ", ".join(conn.name for conn in self.config.connections) or "none"
            raise BackfillError(f"no connection named {connection!r} (configured: {known})")
        for conn in chosen:
            vendor = self.adapters[conn.vendor]
            if vendor.missing(Capability.FIND_BY_NUMBER):
                raise BackfillError(
                    f"connection {conn.name!r}: {vendor.display_name} ({conn.vendor}) cannot "
                    "find a ticket by its number, so a vendor reference cannot be adopted; "
                    "leave it out with --connection"
                )
        by_psa: dict[str, list[ConnectionConfig]] = {}
        for conn in chosen:
            by_psa.setdefault(conn.psa, []).append(conn)
        return by_psa

    async def run(
        self,
        psa: str,
        connections: Sequence[ConnectionConfig],
        window: timedelta,
        *,
        restart: bool = False,
        stop_after: int | None = None,
        progress: Progress | None = None,
    ) -> BackfillRun:
        """Adopt the linked tickets of ``psa`` updated in the last ``window`` into
        ``connections``; continue an unfinished run of the same scope unless ``restart``.

        ``stop_after``: finish at most this many tickets, then return with the run
        unfinished (the next run continues after them).
        """
        scope = scope_of(psa, connections)
        now = self.clock.now()

        def begin(c: Connection) -> tuple[checkpoints.Checkpoint, bool]:
            self._secret = identity.marker_secret(self.config, c, now)
            found = checkpoints.checkpoint(c, scope)
            if found is not None and not found.finished and not restart:
                return found, True
            return checkpoints.start_checkpoint(c, scope, now - window, now), False

        cp, resumed = await self.store.run(begin)
        state = BackfillRun(scope, cp.since_at, resumed=resumed)
        state.counts.update({k: int(v) for k, v in cp.counts.items() if k in state.counts})
        log.info(
            "backfill_started",
            scope=scope,
            since=cp.since_at.isoformat(),
            resumed=resumed,
            continues_after=cp.resume_after,
        )
        at: datetime | None = cp.resume_at or cp.since_at
        after = cp.resume_after
        done = 0
        adapter = self.adapters[psa]
        while True:
            batch = await adapter.changes_after(at, after, max_pages=1)
            changes = sorted(batch.changes, key=lambda ch: ch.updated_at)
            for ch in changes:
                if stop_after is not None and done >= stop_after:
                    log.info("backfill_paused", scope=scope, **state.counts)
                    return state
                await self._one(psa, connections, ch, state)
                at, after = ch.updated_at, ch.ticket_id
                done += 1
                if progress is not None:
                    progress(state, ch.ticket_id)
            if batch.complete or not changes:
                break

        def finish(c: Connection) -> None:
            checkpoints.save_checkpoint(
                c,
                scope,
                resume_at=at,
                resume_after=after,
                counts=state.counts,
                now=self.clock.now(),
                finished=True,
            )

        await self.store.run(finish)
        state.finished = True
        log.info("backfill_finished", scope=scope, **state.counts)
        return state

    async def _one(
        self,
        psa: str,
        connections: Sequence[ConnectionConfig],
        ch: TicketChange,
        state: BackfillRun,
    ) -> None:
        """Adopt one listed PSA ticket into each connection whose vendor has the ticket it
        names; record it and the checkpoint in one transaction."""
        state.counts["read"] += 1
        adapter = self.adapters[psa]
        found: list[tuple[ConnectionConfig, Ticket, list[Note]]] = []
        ticket: Ticket | None = None
        psa_notes: list[Note] | None = None
        try:
            ticket = ch.ticket if ch.ticket is not None and not ch.ticket.partial else None
            ticket = ticket or await adapter.get_ticket(ch.ticket_id)
            reference = (ticket.external_ref or "").strip()
            if not reference:
                state.counts["no_reference"] += 1
            else:
                known = await self.store.run(
                    lambda c: {
                        conn.name: repo.get_link(c, conn.name, ch.ticket_id) for conn in connections
                    }
                )
                for conn in connections:
                    link = known[conn.name]
                    if link is not None and link.state != "watching":
                        state.counts["already_linked"] += 1
                        continue
                    vendor = await self.adapters[conn.vendor].find_ticket(reference)
                    if vendor is None:
                        state.counts["not_found"] += 1
                        log.warning(
                            "backfill_reference_not_found",
                            connection=conn.name,
                            psa_ticket=ticket.ref.label,
                            vendor_number=reference,
                        )
                        continue
                    if psa_notes is None:
                        psa_notes = await adapter.list_notes(ch.ticket_id)
                    vendor_notes = await self.adapters[conn.vendor].list_notes(vendor.ref.id)
                    found.append((conn, vendor, vendor_notes))
        except (AuthFailedError, CapabilityError):
            raise  # every ticket would fail alike: stop (the next run continues here)
        except PermanentError as exc:  # a ticket that cannot be read: say so, go on
            state.counts["skipped"] += 1
            log.warning("backfill_ticket_skipped", ticket_ref=ch.ticket_id, error=str(exc))
            found = []

        def record(c: Connection) -> dict[str, int]:
            counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
            now = self.clock.now()
            for conn, vendor, vendor_notes in found:
                assert ticket is not None
                assert psa_notes is not None
                link = repo.get_link(c, conn.name, ch.ticket_id)
                if link is not None and link.state != "watching":  # linked meanwhile
                    counts["already_linked"] += 1
                    continue
                adopted = self._adopt(
                    c, conn, ticket, psa_notes, vendor, vendor_notes, link, now, counts
                )
                counts["adopted" if adopted else "already_linked"] += 1
            total = {k: state.counts[k] + counts[k] for k in COUNTS}
            checkpoints.save_checkpoint(
                c,
                state.scope,
                resume_at=ch.updated_at,
                resume_after=ch.ticket_id,
                counts=total,
                now=now,
            )
            return counts

        added = await self.store.run(record)
        for key, value in added.items():
            state.counts[key] += value

    def _adopt(
        self,
        c: Connection,
        conn: ConnectionConfig,
        ticket: Ticket,
        psa_notes: list[Note],
        vendor: Ticket,
        vendor_notes: list[Note],
        watching: LinkRow | None,
        now: datetime,
        counts: dict[str, int],
    ) -> bool:
        """Store one adopted link (upgrading the ``watching`` one) and its ledger in the
        caller's transaction; False when the daemon linked the ticket meanwhile."""
        assert self._secret is not None
        made = adopt.adopted_link(conn, ticket, vendor, watching, now)
        link_id = checkpoints.put_link_unless_linked(c, made)
        if link_id is None:
            return False
        plan, notes = adopt.decide_adoption(
            conn,
            ticket,
            psa_notes,
            vendor,
            vendor_notes,
            link_id,
            psa_label=self.config.display_name(conn.psa),
            vendor_label=self.config.display_name(conn.vendor),
            secret=self._secret,
            now=now,
        )
        store_plan.apply_plan(c, plan)
        counts["notes_matched"] += notes.matched
        counts["notes_seen"] += notes.seen
        counts["notes_ours"] += notes.ours
        log.info(
            "link_adopted",
            connection=conn.name,
            psa_ticket=ticket.ref.label,
            vendor_ticket=vendor.ref.label,
            link_id=link_id,
            notes_matched=notes.matched,
            notes_seen=notes.seen,
        )
        return True
