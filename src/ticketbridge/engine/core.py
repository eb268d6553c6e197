"""The engine: turns changes seen on either side into decisions, and decisions into writes.

Flow: a poll or a webhook hint names a ticket -> the engine reads its
authoritative state through the adapter -> in one transaction, reads the
ticket's links with their ledger keys (``store.plan``), decides with pure
functions (``engine.mirror``, ``engine.linking``) a plan of link and ledger
changes, outbox rows and audit events, applies it, and runs the SLA and rule
hooks -> the dispatcher sends the outbox rows, oldest first per (link, target),
each with its idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from ticketbridge.adapters import field_aliases
from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.clock import Clock
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig
from ticketbridge.domain import (
    Note,
    Ticket,
    TicketChange,
    WebhookHint,
)
from ticketbridge.engine import decide, identity, linking, mirror
from ticketbridge.engine.dispatch import LOCAL_HINT, Dispatcher
from ticketbridge.engine.reviews import ReviewWriter
from ticketbridge.engine.rules import RuleKeeper
from ticketbridge.engine.sla import SlaKeeper
from ticketbridge.engine.wake import Wake
from ticketbridge.errors import (
    AdapterError,
    PermanentError,
)
from ticketbridge.log import ticket_context
from ticketbridge.metrics import Metrics
from ticketbridge.plan import Plan
from ticketbridge.rules import load_rules_or_raise
from ticketbridge.rules.models import accept_field_words
from ticketbridge.sla.clock import ClockPolicy
from ticketbridge.store import Store, repo
from ticketbridge.store import closeout as closeout_store
from ticketbridge.store import plan as store_plan
from ticketbridge.store import rules as rule_store
from ticketbridge.store.batch import GroupCommit
from ticketbridge.store.rows import InboxRow, LinkRow

__all__ = ["Engine", "PollHealth"]

log = structlog.get_logger("ticketbridge.engine")

#: Polls in a row that may fail on the same change of one ticket before it is set aside.
POLL_STRIKES = 3

#: Links whose rules are evaluated per transaction of a rules sweep or pass.
RULES_BATCH = 200

#: Open links a rules pass re-evaluates whatever their timers (a rolling safety net).
ROLLING_BATCH = 100

#: Batches one sweep handles at most (the rest waits for the next tick).
MAX_BATCHES = 50

#: Due SLA clocks handled per transaction of a sweep.
SWEEP_BATCH = 500


#: A hint whose ticket cannot be read this often is dropped: polling backs it up.
_HINT_ATTEMPTS = 3

#: Tickets remembered per process (shown by webhooks, last update seen, last read whole);
#: one forgotten is read again.
_REMEMBERED = 20_000


class _Shown:
    """What this process saw of tickets: per ticket, the newest one a verified webhook
    payload showed (and whether a decision already used it), and the newest update time
    seen."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[tuple[str, str], tuple[Ticket, bool]] = OrderedDict()
        self._latest: OrderedDict[tuple[str, str], datetime] = OrderedDict()

    def offer(self, system: str, ticket: Ticket) -> None:
        """A payload's ticket, kept unless an older one than what is held."""
        key = (system, ticket.ref.id)
        held = self._waiting.get(key)
        if ticket.updated_at is None:
            self._waiting.pop(key, None)
            return
        if held is None or held[0].updated_at is None or ticket.updated_at >= held[0].updated_at:
            self._waiting[key] = (ticket, False)
            self._waiting.move_to_end(key)
            _trim(self._waiting)

    def forget(self, system: str, ticket_id: str) -> None:
        """A hint that showed no ticket: its processing must not be skipped."""
        self._waiting.pop((system, ticket_id), None)

    def take(self, system: str, ticket_id: str) -> tuple[Ticket | None, bool]:
        """The ticket held for a hint, and whether a decision already used it (then the
        hint tells nothing new: its webhook came before that decision read the notes)."""
        held = self._waiting.get((system, ticket_id))
        return (None, False) if held is None else held

    def used(self, system: str, ticket: Ticket) -> None:
        key = (system, ticket.ref.id)
        held = self._waiting.get(key)
        if held is not None and held[0] is ticket:
            self._waiting[key] = (ticket, True)

    def is_older(self, system: str, ticket: Ticket) -> bool:
        seen = self._latest.get((system, ticket.ref.id))
        return seen is not None and ticket.updated_at is not None and ticket.updated_at < seen

    def saw(self, system: str, ticket: Ticket) -> None:
        if ticket.updated_at is None:
            return
        key = (system, ticket.ref.id)
        seen = self._latest.get(key)
        if seen is None or ticket.updated_at > seen:
            self._latest[key] = ticket.updated_at
        self._latest.move_to_end(key)
        _trim(self._latest)


def _trim(remembered: OrderedDict[Any, Any]) -> None:
    while len(remembered) > _REMEMBERED:
        remembered.popitem(last=False)


@dataclass
class PollHealth:
    ok: bool | None = None
    last_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0


@dataclass
class _Sides:
    psa: dict[str, list[ConnectionConfig]] = field(default_factory=lambda: defaultdict(list))
    vendor: dict[str, list[ConnectionConfig]] = field(default_factory=lambda: defaultdict(list))


#: How far a product's clock may run behind ours, for changes read "just now" (see
#: ``TicketAdapter.change_time_resolution``).
POLL_CLOCK_SKEW = timedelta(seconds=1)


def _stamp(change: TicketChange) -> str:
    """What a poll remembers of a change it processed: its time, and its version where the
    product keeps one (then a later change within the same tick of the clock is new)."""
    at = change.updated_at.isoformat()
    return at if change.version is None else f"{at} v{change.version}"


def _stamp_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.split(" ", 1)[0])


class Engine:
    def __init__(
        self,
        config: TicketBridgeConfig,
        store: Store,
        adapters: dict[str, TicketAdapter],
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.adapters = adapters
        self.metrics = metrics
        self.clock = clock
        self.connections = {c.name: c for c in config.connections}
        self.sides = _Sides()
        for conn in config.connections:
            self.sides.psa[conn.psa].append(conn)
            self.sides.vendor[conn.vendor].append(conn)
        self.health: dict[str, PollHealth] = {name: PollHealth() for name in adapters}
        self.wake = Wake()
        self._poll_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._postgres = not store.is_sqlite
        self._poll_strikes: dict[tuple[str, str, str], int] = {}
        self.sla = SlaKeeper(config, adapters, metrics, repo.enqueue)
        ruleset = None
        if config.rules.directory is not None:
            accept_field_words(field_aliases())  # rule states stored in a product's words
            ruleset = load_rules_or_raise(
                config.rules.directory, calendars=self.sla.calendars, aliases=field_aliases()
            )
        self.rules = RuleKeeper(config, ruleset, adapters, metrics, self.sla, repo.enqueue)
        self.reviews = ReviewWriter(self._review_policy if self.sla.enabled else None)
        self.dispatcher = Dispatcher(config, store, adapters, metrics, clock, self.wake)
        self._secret: str | None = None
        #: Notes older than this start may already be mirrored (a store restored from a
        #: backup does not know of writes made after it): their mirrors are looked up first.
        self.started_at = clock.now()
        self._intake = GroupCommit(store, repo.add_hints)
        self._shown = _Shown()
        #: When each ticket's notes were last read whole (monotonic seconds).
        self._read_whole: OrderedDict[tuple[str, str], float] = OrderedDict()
        #: The hints read for the next round by the transaction that finished the last one.
        self._next_hints: list[InboxRow] | None = None
        #: Where the rules pass's rolling re-check of open links continues.
        self._rolling_after = 0

    # ------------------------------------------------------------------ polling
    async def poll(self, system: str) -> int:
        """One incremental poll of ``system``; returns how many changed tickets it processed."""
        async with self._poll_locks[system]:
            return await self._poll(system)

    async def _poll(self, system: str) -> int:
        """Read the changes after the cursor (at most ``poll_max_pages`` pages), process
        them oldest first, and save the cursor at the last change actually processed.

        Normally a poll re-reads ``overlap`` seconds before its cursor (late commits,
        clock skew) and skips what it already processed there (``seen``).  A poll that
        stops at its page limit says so, and the next one continues right after the last
        ticket it processed (``resume_after``), without the overlap, until the backlog is
        read; a poll that reaches the end of the listing goes back to the overlap.
        """
        adapter = self.adapters[system]
        eng = self.config.engine
        now = self.clock.now()
        # A product whose change times are whole seconds and that sends no webhooks: a
        # change processed within that second (plus a second of clock skew) is read again
        # on the next poll, since a later change in the same second shows the same time.
        resolution = adapter.change_time_resolution
        settled = now - resolution - POLL_CLOCK_SKEW if resolution else None
        cur = await self.store.run(lambda c: repo.get_cursor(c, system))
        after: str | None = None
        if cur.position is None:
            since = now - timedelta(seconds=eng.initial_lookback)
        elif cur.resume_at is not None and cur.resume_after is not None:
            since, after = cur.resume_at, cur.resume_after
        else:
            since = cur.position - timedelta(seconds=eng.overlap)
        try:
            batch = await adapter.changes_after(since, after, max_pages=eng.poll_max_pages)
        except AdapterError as exc:
            self._poll_failed(system, exc)
            return 0
        seen = dict(cur.seen)
        position = cur.position
        last: TicketChange | None = None  # the last change processed (or already seen)
        processed = 0
        failed: Exception | None = None
        # oldest first; within a second, the listing's own id order (the keyset's)
        for ch in sorted(batch.changes, key=lambda change: change.updated_at):
            stamp = _stamp(ch)
            if seen.get(ch.ticket_id) == stamp:
                last = ch
                continue
            if ch.own_write:  # our own write's echo: nothing else changed, nothing to read
                self.metrics.changes.labels(system, "own_write").inc()
            else:
                failed = await self._poll_one(system, ch, stamp)
                if failed is not None:
                    break
            processed += 1
            last = ch
            if settled is None or ch.updated_at <= settled:
                seen[ch.ticket_id] = stamp
            if position is None or ch.updated_at > position:
                position = ch.updated_at
        resume_at: datetime | None = None
        resume_after: str | None = None
        if not batch.complete or (failed is not None and cur.resume_at is not None):
            # A backlog: the next poll continues right after the last change this one
            # processed (or from where this one started, if it processed none).
            if last is not None:
                resume_at, resume_after = last.updated_at, last.ticket_id
            else:
                resume_at, resume_after = cur.resume_at, cur.resume_after
        if not batch.complete:
            self.metrics.poll_page_limits.labels(system).inc()
            log.warning(
                "poll_page_limit",
                system=system,
                pages=eng.poll_max_pages,
                processed=processed,
                continues_at=resume_at.isoformat() if resume_at else None,
                continues_after=resume_after,
                hint="more changes wait; the next poll continues from here "
                "(raise engine.poll_max_pages or poll more often to catch up sooner)",
            )
        if position is not None:
            floor = position - timedelta(seconds=eng.overlap)
            seen = {k: v for k, v in seen.items() if _stamp_time(v) >= floor}
        cursor = repo.CursorState(position, seen, resume_at, resume_after)
        await self.store.run(lambda c: repo.save_cursor(c, system, cursor, self.clock.now()))
        if failed is not None:
            self._poll_failed(system, failed)
        else:
            self._poll_ok(system)
        return processed

    async def _poll_one(self, system: str, ch: TicketChange, stamp: str) -> Exception | None:
        """Process one polled change; the error to stop the poll at (it is retried next
        poll), or ``None`` when done, skipped, or set aside after repeated failures."""
        try:
            await self.process_ticket(system, ch.ticket_id, trigger="poll", ticket=ch.ticket)
        except PermanentError as exc:
            log.warning("ticket_skipped", system=system, ticket_ref=ch.ticket_id, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - transient or a bug: stop here, retry next poll
            strike = (system, ch.ticket_id, stamp)
            self._poll_strikes[strike] = self._poll_strikes.get(strike, 0) + 1
            if self._poll_strikes[strike] < POLL_STRIKES:
                return exc
            # The same change failed every time: do not let one ticket stop them all.
            log.error(
                "ticket_quarantined",
                system=system,
                ticket_ref=ch.ticket_id,
                updated_at=stamp,
                error=f"{type(exc).__name__}: {exc}",
                hint="fix the record or the cause; its next change is read again",
            )
            self._poll_strikes.pop(strike, None)
        return None

    def _poll_ok(self, system: str) -> None:
        h = self.health[system]
        if h.ok is False:
            log.info("poll_recovered", system=system, after_failures=h.failures)
        h.ok, h.failures, h.last_error = True, 0, None
        h.last_at = h.last_ok_at = self.clock.now()
        self.metrics.polls.labels(system, "ok").inc()
        self.metrics.last_poll_ok.labels(system).set(1)

    def _poll_failed(self, system: str, exc: BaseException) -> None:
        h = self.health[system]
        if h.ok is not False:  # edge-triggered: one line per outage, not one per poll
            log.warning("poll_failed", system=system, error=str(exc), error_type=type(exc).__name__)
        h.ok, h.last_error = False, f"{type(exc).__name__}: {exc}"
        h.failures += 1
        h.last_at = self.clock.now()
        self.metrics.polls.labels(system, "error").inc()
        self.metrics.last_poll_ok.labels(system).set(0)

    # ------------------------------------------------------------------ hints
    async def add_hint(
        self, system: str, ticket_id: str, delivery_key: str, *, ticket: Ticket | None = None
    ) -> bool:
        """Record a verified webhook hint durably; wake the worker.  False if a duplicate.

        ``ticket``: the ticket as the webhook's verified payload showed it; kept in
        memory (the newest per ticket) so the hint's processing need not read it again.

        The unique (system, delivery key) constraint decides between concurrent copies of
        one delivery (several replicas, or a vendor retrying while we answer).  The insert
        runs on a store thread, so intake answers while other store work is in progress,
        and deliveries arriving together share one transaction (group commit).
        """
        hint = repo.NewHint(system, delivery_key, ticket_id, self.clock.now())
        # before the hint is stored: it may be processed at once
        if ticket is not None:
            self._shown.offer(system, ticket)
        else:
            self._shown.forget(system, ticket_id)
        added = await self._intake.submit(hint)
        if added:
            self.wake.set()
        return added

    async def process_hints(self, limit: int = 50) -> int:
        """Process pending hints, a ticket once per round; how many hints are done.

        The transaction that marks a round's hints done also reads the next round's (one
        transaction per round, not two), and counts the pending ones only when a full
        round waits."""
        rows = self._next_hints if self._next_hints is not None else None
        self._next_hints = None
        if rows is None or len(rows) > limit:
            rows = await self.store.run(lambda c: repo.pending_hints(c, limit=limit))
        done: list[int] = []
        seen: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.system, row.ticket_id)
            if key not in seen:
                hint = WebhookHint(row.ticket_id, row.delivery_key)
                if await self.adapters[row.system].own_echo(hint):
                    self.metrics.changes.labels(row.system, "own_write").inc()
                    done.append(row.id)  # our own write's echo: nothing else to read
                    continue
                shown, used = self._shown.take(row.system, row.ticket_id)
                if used:  # an earlier decision already used the newest payload: nothing new
                    self.metrics.changes.labels(row.system, "covered").inc()
                    done.append(row.id)
                    continue
                try:
                    trigger = "follow_up" if row.delivery_key.startswith(LOCAL_HINT) else "webhook"
                    await self.process_ticket(
                        row.system, row.ticket_id, trigger=trigger, ticket=shown
                    )
                    if shown is not None:
                        self._shown.used(row.system, shown)
                except PermanentError as exc:
                    log.warning(
                        "hint_dropped", system=row.system, ticket_ref=row.ticket_id, error=str(exc)
                    )
                except Exception as exc:  # noqa: BLE001 - keep the hint; polling backs it up
                    log.warning(
                        "hint_failed",
                        system=row.system,
                        ticket_ref=row.ticket_id,
                        error=str(exc),
                        error_type=type(exc).__name__,
                        attempts=row.attempts + 1,
                    )
                    await self.store.run(partial(repo.hint_failed, hint_id=row.id))
                    if row.attempts + 1 < _HINT_ATTEMPTS:
                        continue
                seen.add(key)
            done.append(row.id)

        def finish(c: Connection) -> list[InboxRow]:
            repo.hints_done(c, done, self.clock.now())
            following = repo.pending_hints(c, limit=limit)
            depth = len(following)
            if depth >= limit:
                depth = repo.inbox_count(c, state="pending")
            self.metrics.inbox_depth.set(depth)
            return following

        following = await self.store.run(finish)
        self._next_hints = following or None
        return len(done)

    # ------------------------------------------------------------------ decisions
    async def process_ticket(
        self, system: str, ticket_id: str, *, trigger: str, ticket: Ticket | None = None
    ) -> None:
        """Read a ticket's authoritative state and decide what follows from it.

        ``ticket``: the ticket as a listing or a verified webhook payload showed it; used
        instead of reading it unless it is older than what was already seen of it.
        """
        self.metrics.changes.labels(system, trigger).inc()
        structlog.contextvars.bind_contextvars(system=system, ticket_ref=ticket_id)
        if ticket is not None and ticket.ref.id != ticket_id:
            ticket = None
        try:
            if system in self.sides.psa:
                await self._process_psa(system, ticket_id, ticket)
            if system in self.sides.vendor:
                await self._process_vendor(system, ticket_id, ticket)
        finally:
            structlog.contextvars.unbind_contextvars("system", "ticket_ref")

    def _fresh(self, system: str, shown: Ticket | None, snapshots: list[Any]) -> Ticket | None:
        """``shown`` if it may stand for the ticket: not older than what this process or
        the links' snapshots (``snapshots``) already saw of it."""
        if shown is None or shown.updated_at is None:
            return None
        if self._shown.is_older(system, shown):
            return None
        if any(mirror.older_than_snapshot(snap, shown) for snap in snapshots):
            return None
        return shown

    async def _read_ticket(
        self, system: str, ticket_id: str, shown: Ticket | None, snapshots: list[Any]
    ) -> Ticket:
        ticket = self._fresh(system, shown, snapshots)
        if ticket is None:
            ticket = await self.adapters[system].get_ticket(ticket_id)
        self._shown.saw(system, ticket)
        return ticket

    async def _read_notes(
        self, system: str, ticket_id: str, seen_until: datetime | None
    ) -> tuple[list[Note], list[str] | None]:
        """The ticket's notes: those since the newest one handled (less
        ``engine.note_overlap``), or all of them when none is handled yet or they were
        last read whole ``engine.note_reread`` ago.  Also the ids read, when not all."""
        eng = self.config.engine
        key = (system, ticket_id)
        whole_at = self._read_whole.get(key)
        now = time.monotonic()
        if seen_until is None or whole_at is None or now - whole_at >= eng.note_reread:
            notes = await self.adapters[system].list_notes(ticket_id)
            self._read_whole[key] = now
            self._read_whole.move_to_end(key)
            while len(self._read_whole) > _REMEMBERED:
                self._read_whole.popitem(last=False)
            return notes, None
        since = seen_until - timedelta(seconds=eng.note_overlap)
        notes = await self.adapters[system].list_notes(ticket_id, since=since)
        return notes, [note.id for note in notes]

    async def _process_psa(self, system: str, ticket_id: str, shown: Ticket | None) -> None:
        adapter = self.adapters[system]
        conns = self.sides.psa[system]

        def look(c: Connection) -> tuple[dict[str, LinkRow | None], datetime | None]:
            found = {conn.name: repo.get_link(c, conn.name, ticket_id) for conn in conns}
            linked = [link.id for link in found.values() if link and link.state != "watching"]
            return found, store_plan.notes_seen_until(c, linked, system)

        existing, seen_until = await self.store.run(look)
        snapshots = [link.psa_snapshot for link in existing.values() if link is not None]
        ticket = await self._read_ticket(system, ticket_id, shown, snapshots)
        manual: dict[str, Ticket | None] = {}
        wanted: list[ConnectionConfig] = []
        creating = False
        need_notes = False
        for conn in conns:
            link = existing[conn.name]
            if link is None or link.state == "watching":
                route = decide.route(conn, ticket)
                if route is None:
                    if link is not None or decide.watched(conn, ticket):
                        wanted.append(conn)  # tracked for escalation rules only
                    continue
                if route.origin == "manual":
                    assert route.vendor_number is not None
                    found = await self.adapters[conn.vendor].find_ticket(route.vendor_number)
                    if found is None:
                        log.warning(
                            "manual_link_not_found",
                            connection=conn.name,
                            vendor_number=route.vendor_number,
                        )
                        continue
                    manual[conn.name] = found
                creating = True
            need_notes = True
            wanted.append(conn)
        if not wanted:
            return
        if creating and ticket.partial:  # a new link needs the whole ticket (description)
            ticket = await adapter.get_ticket(ticket_id)
        notes: list[Note] = []
        note_ids: list[str] | None = None
        if need_notes:
            notes, note_ids = await self._read_notes(
                system, ticket_id, None if creating else seen_until
            )

        def decide_all(c: Connection) -> bool:
            wake = False
            now = self.clock.now()
            current = store_plan.linked_for_psa(
                c, [conn.name for conn in wanted], ticket_id, note_ids
            )
            for conn in wanted:
                linked = current[conn.name]
                if linked is None or linked.link.state == "watching":
                    link = None if linked is None else linked.link
                    wake |= self._decide_unlinked(
                        c, conn, ticket, notes, manual.get(conn.name), link
                    )
                else:
                    wake |= self._decide_psa(c, conn, linked, ticket, notes, now)
            return wake

        if await self.store.run(decide_all):
            self.wake.set()
        adapter.handled(ticket)

    def _decide_unlinked(
        self,
        c: Connection,
        conn: ConnectionConfig,
        ticket: Ticket,
        notes: list[Note],
        manual_vendor: Ticket | None,
        link: LinkRow | None,
    ) -> bool:
        """A PSA ticket without a link (or only watched): link it, or watch it."""
        now = self.clock.now()
        route = decide.route(conn, ticket)
        if route is None or (route.origin == "manual" and manual_vendor is None):
            return self._watch(c, conn, ticket, link, now)
        created = self._create_link(c, conn, ticket, notes, manual_vendor, now, link)
        if created is not None:
            self._evaluate_rules(c, created, now)
        return created is not None

    def _decide_psa(
        self,
        c: Connection,
        conn: ConnectionConfig,
        linked: store_plan.LinkedTicket,
        ticket: Ticket,
        notes: list[Note],
        now: datetime,
    ) -> bool:
        """A linked PSA ticket: decide (pure), apply the plan, then the SLA and rule hooks,
        all in the caller's transaction."""
        with ticket_context(linked.link):
            return self._decide_psa_linked(c, conn, linked, ticket, notes, now)

    def _decide_psa_linked(
        self,
        c: Connection,
        conn: ConnectionConfig,
        linked: store_plan.LinkedTicket,
        ticket: Ticket,
        notes: list[Note],
        now: datetime,
    ) -> bool:
        link = linked.link
        label = self.config.display_name(conn.psa)
        plan = mirror.decide_psa_linked(
            conn,
            linked,
            ticket,
            notes,
            psa_label=label,
            now=now,
            secret=self._marker(c, now),
            look_up_before=self.started_at,
        )
        queued = self._apply(c, plan)
        changes = plan.changes(link.id)
        if "psa_status" in changes and self.sla.enabled and link.vendor_ticket_id:
            fresh = repo.link_by_id(c, link.id)
            if fresh is not None:
                self.sla.recompute(c, fresh, now)
        queued |= self._evaluate_rules(c, link.id, now)
        if changes.get("state") == "closed":  # after the rules: their review record is in
            queued |= self.reviews.on_closed(c, link.id, now)
        return queued

    def _review_policy(self, link: LinkRow) -> tuple[str, ClockPolicy] | None:
        """The contract (by name) and clock policy a link's review measures it against."""
        found = self.sla.policy(link)
        return None if found is None else (found[0].name, found[1])

    def _marker(self, c: Connection, now: datetime) -> str:
        """The installation's marker secret (read or made once, then kept)."""
        if self._secret is None:
            self._secret = identity.marker_secret(self.config, c, now)
        return self._secret

    def _apply(self, c: Connection, plan: Plan) -> bool:
        """Write ``plan``; True when it queued a write (a note, or a field change not
        already queued under its key)."""
        applied = store_plan.apply_plan(c, plan)
        for count in plan.notes:
            self.metrics.notes.labels(count.direction, count.outcome).inc()
        mirrored = any(count.outcome == "mirrored" for count in plan.notes)
        return mirrored or applied.queued > 0

    def _create_link(
        self,
        c: Connection,
        conn: ConnectionConfig,
        ticket: Ticket,
        notes: list[Note],
        manual_vendor: Ticket | None,
        now: datetime,
        watching: LinkRow | None = None,
    ) -> int | None:
        """Link a PSA ticket to a vendor ticket: an existing one (manual) or a new one;
        the link's id, or ``None`` when its client has no vendor account.

        ``watching`` is the ticket's link while it was only tracked for rules: it is
        upgraded in place, keeping its history.
        """
        draft = None
        if manual_vendor is None:
            account = decide.account_for(conn, ticket.company)
            if account is None:
                log.warning(
                    "company_not_routed",
                    connection=conn.name,
                    company=ticket.company,
                    hint=f"add {ticket.company!r} under connections.accounts",
                )
                return None
            draft = decide.draft_for(conn, ticket, account, self.config.display_name(conn.psa))
        link_id = store_plan.put_link(
            c, linking.new_link(conn, ticket, manual_vendor, watching, now)
        )
        plan = linking.decide_link_created(
            conn, ticket, notes, link_id, manual_vendor=manual_vendor, draft=draft, now=now
        )
        self._apply(c, plan)
        self._note_return(c, conn, link_id, ticket, now)
        origin = "manual" if manual_vendor else "routed"
        self.metrics.links.labels(conn.name, origin).inc()
        with structlog.contextvars.bound_contextvars(
            link_id=link_id, psa_ticket=ticket.ref.number or ticket.ref.id
        ):
            log.info("link_created", connection=conn.name, origin=origin)
        return link_id

    def _note_return(
        self, c: Connection, conn: ConnectionConfig, link_id: int, ticket: Ticket, now: datetime
    ) -> None:
        """A new link of a client that was closed out: its return is recorded (a KPI)."""
        closeout_id = closeout_store.note_return(c, link_id, ticket.company, conn.name, now)
        if closeout_id is not None:
            log.warning(
                "closed_out_client_returned",
                connection=conn.name,
                client=ticket.company,
                psa_ticket=ticket.ref.label,
                closeout_id=closeout_id,
            )

    def _watch(
        self,
        c: Connection,
        conn: ConnectionConfig,
        ticket: Ticket,
        link: LinkRow | None,
        now: datetime,
    ) -> bool:
        """Track a PSA ticket that is not (yet) the vendor's: escalation rules look at it."""
        if link is None:
            link_id = store_plan.put_link(c, linking.watch_link(conn, ticket, now))
            plan = linking.decide_watch_started(conn, ticket, link_id, now)
            self._note_return(c, conn, link_id, ticket, now)
        else:
            link_id = link.id
            plan = linking.decide_watching(conn, ticket, link, now)
        self._apply(c, plan)
        return self._evaluate_rules(c, link_id, now)

    async def _process_vendor(self, system: str, ticket_id: str, shown: Ticket | None) -> None:
        def look(c: Connection) -> tuple[list[LinkRow], datetime | None]:
            found = repo.links_for_vendor(c, system, ticket_id)
            return found, store_plan.notes_seen_until(c, [link.id for link in found], system)

        linked, seen_until = await self.store.run(look)
        if not linked:
            return
        ticket = await self._read_ticket(system, ticket_id, shown, [])
        notes, note_ids = await self._read_notes(system, ticket_id, seen_until)

        def decide_all(c: Connection) -> bool:
            wake = False
            now = self.clock.now()
            for linked in store_plan.linked_for_vendor(c, system, ticket_id, note_ids):
                conn = self.connections[linked.link.connection]
                wake |= self._decide_vendor(c, conn, linked, ticket, notes, now)
            return wake

        if await self.store.run(decide_all):
            self.wake.set()
        self.adapters[system].handled(ticket)

    def _decide_vendor(
        self,
        c: Connection,
        conn: ConnectionConfig,
        linked: store_plan.LinkedTicket,
        ticket: Ticket,
        notes: list[Note],
        now: datetime,
    ) -> bool:
        """A linked vendor ticket: decide (pure), apply the plan, then the SLA and rule
        hooks, all in the caller's transaction."""
        with ticket_context(linked.link):
            return self._decide_vendor_linked(c, conn, linked, ticket, notes, now)

    def _decide_vendor_linked(
        self,
        c: Connection,
        conn: ConnectionConfig,
        linked: store_plan.LinkedTicket,
        ticket: Ticket,
        notes: list[Note],
        now: datetime,
    ) -> bool:
        link = linked.link
        label = self.config.display_name(conn.vendor)
        plan = mirror.decide_vendor_linked(
            conn,
            linked,
            ticket,
            notes,
            vendor_label=label,
            now=now,
            secret=self._marker(c, now),
            look_up_before=self.started_at,
        )
        queued = self._apply(c, plan)
        if self.sla.enabled:
            fresh = repo.link_by_id(c, link.id)
            if fresh is not None and self.sla.recompute(c, fresh, now) is not None:
                queued = True
        queued |= self._evaluate_rules(c, link.id, now)
        return queued

    def _evaluate_rules(self, c: Connection, link_id: int, now: datetime) -> bool:
        """Evaluate the escalation rules of a link in the current transaction."""
        if not self.rules.enabled:
            return False
        found = closeout_store.link_and_hold(c, link_id)
        if found is None:
            return False
        link, held = found
        with ticket_context(link):
            result = self.rules.evaluate(c, link, now, held=held)
        return bool(result and result.intents)

    # ------------------------------------------------------------------ SLA
    async def sla_sweep(self) -> int:
        """Flag every clock whose next threshold or deadline has come."""
        if not self.sla.enabled:
            return 0
        now = self.clock.now()

        def fetch(c: Connection) -> list[int]:
            due = self.sla.due(c, now, limit=SWEEP_BATCH)
            for link_id in due:
                self.sla.sweep_one(c, link_id, now)
            # then the rules of the batch, on the clocks as swept, read at once
            self.rules.evaluate_batch(c, due, now)
            return due

        total = await self._in_batches(fetch, lambda c, link_id: None, SWEEP_BATCH)
        self.metrics.sla_sweeps.inc()
        return total

    async def rules_sweep(self) -> int:
        """Run every escalation step whose timer has come (each exactly once, in order)."""
        if not self.rules.enabled:
            return 0
        return await self._rules_due(self.clock.now())

    async def _rules_due(self, now: datetime) -> int:
        """Evaluate the links whose rule timer has come, a batch per transaction (each
        batch's links, states, clocks and events read at once)."""
        total = 0
        for _ in range(MAX_BATCHES):

            def one_batch(c: Connection) -> list[int]:
                due = self.rules.due(c, now)
                self.rules.evaluate_batch(c, due, now)
                return due

            due = await self.store.run(one_batch)
            total += len(due)
            if len(due) < RULES_BATCH:
                break
            await asyncio.sleep(0)  # webhooks and writes get a turn between batches
        if total:
            self.wake.set()
        return total

    async def _in_batches(
        self,
        fetch: Callable[[Connection], list[int]],
        handle: Callable[[Connection, int], object],
        batch: int,
    ) -> int:
        """Handle due links a batch per transaction until fewer than a batch are due.

        Handling moves each link's timer on; ``MAX_BATCHES`` bounds a sweep should some
        timers not move, so one tick never spins.
        """
        total = 0
        for _ in range(MAX_BATCHES):

            def one_batch(c: Connection) -> list[int]:
                due = fetch(c)
                for link_id in due:
                    handle(c, link_id)
                return due

            due = await self.store.run(one_batch)
            total += len(due)
            if len(due) < batch:
                break
            await asyncio.sleep(0)  # webhooks and writes get a turn between batches
        if total:
            self.wake.set()
        return total

    async def rules_pass(self) -> int:
        """Evaluate the links whose rules may have changed since their last evaluation;
        how many were evaluated.

        Each evaluation stores the link's timer: its next chain step, or the first moment
        time alone may change one of its conditions (``next_turn_at``); every change to a
        link evaluates it at once.  So a pass evaluates only: links never evaluated, links
        whose timer has come, and a rolling slice of ``ROLLING_BATCH`` open links (a
        safety net, each link seen again every ``links / ROLLING_BATCH`` passes).  When
        the rules or the SLA settings differ from those the stored timers were set by,
        the first pass evaluates every open link once.
        """
        if not self.rules.enabled:
            return 0
        now = self.clock.now()
        digest = self._rules_digest()
        stored = await self.store.run(rule_store.rules_digest)
        if stored != digest:
            total = await self._by_id(repo.open_link_ids, now)
            await self.store.run(lambda c: rule_store.save_rules_digest(c, digest, now))
        else:
            total = await self._by_id(rule_store.links_without_rule_state, now)
            total += await self._rules_due(now)

            def rolling(c: Connection) -> list[int]:
                ids = repo.open_link_ids(c, after=self._rolling_after, limit=ROLLING_BATCH)
                self.rules.evaluate_batch(c, ids, now)
                return ids

            ids = await self.store.run(rolling)
            self._rolling_after = ids[-1] if ids and len(ids) == ROLLING_BATCH else 0
            total += len(ids)
        self.metrics.rules_evaluated.inc(total)
        self.wake.set()
        return total

    async def _by_id(self, fetch: Callable[..., list[int]], now: datetime) -> int:
        """Evaluate the links ``fetch(c, after=, limit=)`` lists, a batch per transaction."""
        after = 0
        total = 0
        while True:

            def one_batch(c: Connection, after: int = after) -> list[int]:
                ids = fetch(c, after=after, limit=RULES_BATCH)
                self.rules.evaluate_batch(c, ids, now)
                return ids

            ids = await self.store.run(one_batch)
            total += len(ids)
            if len(ids) < RULES_BATCH:
                break
            after = ids[-1]
            await asyncio.sleep(0)  # let webhooks and writes through between batches
        return total

    def _rules_digest(self) -> str:
        """What the stored rule timers depend on: the rules and the SLA settings."""
        ruleset = self.rules.ruleset
        parts = [self.config.sla.model_dump_json()]
        if ruleset is not None:
            parts.append(repr(ruleset.directory))
            parts.extend(rule.model.model_dump_json() for rule in ruleset.rules)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def sla_repair(self, link_id: int | None = None) -> int:
        """Recompute clocks from their links' event histories (``ticketbridge sla repair``)."""
        now = self.clock.now()
        count = 0
        with self.store.tx() as c:
            links = [repo.link_by_id(c, link_id)] if link_id else repo.list_links(c)
        for link in links:
            if link is None:
                continue
            with self.store.tx() as c:
                if self.sla.recompute(c, link, now) is not None:
                    count += 1
        return count

    # ------------------------------------------------------------------ dispatch
    async def dispatch_once(self, limit: int = 16) -> int:
        """Send every due write (see :class:`~ticketbridge.engine.dispatch.Dispatcher`)."""
        return await self.dispatcher.dispatch_once(limit)

    def recover(self) -> None:
        """At start: writes left in flight, and writes queued before this start (a
        restored store may hold ones already made), are looked up before they are sent."""
        identity.warn_if_unconfigured(self.config)
        # settled in a transaction of its own: a secret made inside a decision that then
        # rolled back would be kept here but never stored
        with self.store.tx() as c:
            self._secret = identity.marker_secret(self.config, c, self.clock.now())
        self.dispatcher.marker_secret_is(self._secret)
        self.dispatcher.recover()
        with self.store.tx() as c:
            count = repo.outbox_look_up_first(c)
        if count:
            log.info(
                "writes_looked_up_first",
                count=count,
                detail="queued before this start: looked up on the target before sending",
            )

    async def close_senders(self) -> None:
        await self.dispatcher.close_senders()

    # ------------------------------------------------------------------ worker
    async def run_worker(self, stop: asyncio.Event) -> None:
        """Process webhook hints and send due writes until ``stop`` is set.

        The two run side by side as separate tasks: reading the tickets that webhooks
        name never waits for writes, and writes never wait for it (see
        :meth:`Dispatcher.run`).  A write in flight when ``stop`` is set is finished,
        never abandoned.
        """
        hints = asyncio.create_task(self._hint_loop(stop), name="hints")
        writes = asyncio.create_task(self.dispatcher.run(stop), name="writes")
        try:
            await asyncio.gather(hints, writes)
        finally:
            for task in (hints, writes):
                task.cancel()

    async def _hint_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.engine.dispatch_interval
        signal = self.wake.listener()
        while not stop.is_set():
            signal.clear()
            try:
                busy = await self.process_hints()
            except Exception as exc:
                log.error("worker_failed", error=str(exc), exc_info=exc)
                busy = 0
            if busy or stop.is_set():
                continue
            waiter = asyncio.ensure_future(signal.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait(
                    {waiter, stopper}, timeout=interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
                stopper.cancel()
