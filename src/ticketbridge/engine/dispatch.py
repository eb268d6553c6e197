"""The dispatcher: sends the outbox's writes, each with its idempotency key.

Ordering: writes of one ticket to one target (one link, one target system) are
sent one at a time, oldest first; that is the only ordering promise.  Everything
else flows independently: the dispatcher is a pool of at most
``engine.dispatch_concurrency`` writes in flight, each its own task, and a slot
that frees up is refilled at once (:meth:`Dispatcher.run`).  Notifications (rule
e-mails and chat messages) are ordered after nothing and hold nothing up.  A
dead-lettered write does hold up the later writes of its own ticket and target
(sending them would break the order); ``ticketbridge outbox list`` says so, and
``/readyz`` and ``ticketbridge_outbox_dead_letters`` show it.

A success is recorded in the same transaction as its consequences (ledger, link,
follow-up rows); a failure is retried with backoff or after the target's
``Retry-After`` (capped by ``engine.retry_after_max``), looked up on the target
first when it may have taken effect, and dead-lettered after
``engine.max_attempts``, when the target refuses, or when it fails past
``engine.write_deadline``.

Ownership: a claim gives the row a token and a lease.  Recording the outcome
requires the token (``repo.ClaimLostError`` otherwise: the whole record rolls back,
a warning is logged and ``ticketbridge_outbox_claims_lost`` counts it).  Right
before sending, the owner renews its lease (refused when it ran out) unless it claimed
the row a moment ago (at least half of the lease left); inside the
call, the HTTP layer starts no retry that could not finish before the lease, less
a safety margin, runs out.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.adapters.kit.http import deadline
from ticketbridge.clock import Clock
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig, read_secret
from ticketbridge.domain import NoteDraft, Side, idempotency_key, marker_for
from ticketbridge.engine.wake import Wake
from ticketbridge.errors import (
    AdapterError,
    ConfigError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from ticketbridge.log import TICKET_KEYS, ticket_fields
from ticketbridge.metrics import Metrics
from ticketbridge.operations import (
    AddNote,
    CreateTicket,
    GarbledOperationError,
    Notify,
    Operation,
    UpdateTicket,
    draft_payload,
    parse_operation,
)
from ticketbridge.store import Store, repo
from ticketbridge.store.batch import GroupCommit
from ticketbridge.store.repo import ClaimLostError
from ticketbridge.store.rows import LinkRow, OutboxRow
from ticketbridge.testing import Faults, installed_faults

__all__ = ["HANDLERS", "Dispatcher", "describe_waits", "draft_payload"]

log = structlog.get_logger("ticketbridge.engine")

#: Prefix of hints the engine leaves itself (re-read a ticket it just created or linked).
LOCAL_HINT = "local:"

#: The owner of a write stops trying this long before its lease runs out (at most a
#: quarter of the lease), so a request still in flight cannot outlive its ownership.
LEASE_MARGIN = 10.0

#: Seconds between two counts of the outbox by state (a gauge; the count reads the whole
#: table, done rows included, so it is not repeated at every dispatch tick).
DEPTH_INTERVAL = 5.0

#: Exponent cap of the retry backoff (``backoff_min * 2**n`` overflows a float otherwise).
_MAX_DOUBLINGS = 30


def bind_ticket(link: LinkRow) -> None:
    """Name the write's ticket in every log event until :meth:`Dispatcher.send` ends."""
    structlog.contextvars.bind_contextvars(**ticket_fields(link))


@dataclass(frozen=True, slots=True)
class _Job:
    """One claimed outbox row, its link, and the operation it carries."""

    row: OutboxRow
    link: LinkRow


@dataclass(frozen=True, slots=True)
class _Done:
    """A proven write to record as done, with what follows from it."""

    row: OutboxRow
    now: datetime
    consequences: Callable[[Connection], None]


def _record_done(c: Connection, items: Sequence[_Done]) -> list[ClaimLostError | None]:
    """Record each success in the caller's transaction; a lost claim records nothing."""
    results: list[ClaimLostError | None] = []
    for item in items:
        try:
            repo.outbox_done(c, item.row.id, item.now, token=item.row.claim_token)
        except ClaimLostError as lost:  # the fenced update matched no row: nothing written
            results.append(lost)
            continue
        item.consequences(c)
        results.append(None)
    return results


def _seconds(value: float | None, ceiling: float) -> float | None:
    """A wait in seconds that ``timedelta`` accepts: finite, from 0 to ``ceiling``."""
    if value is None or math.isnan(value):
        return None
    return min(max(0.0, value), ceiling)


class Dispatcher:
    def __init__(
        self,
        config: TicketBridgeConfig,
        store: Store,
        adapters: Mapping[str, TicketAdapter],
        metrics: Metrics,
        clock: Clock,
        wake: Wake,
        *,
        faults: Faults | None = None,
    ) -> None:
        """``faults`` is a test seam called at fault points (default: the hook installed with
        :func:`ticketbridge.testing.install_faults`, which does nothing in production)."""
        self.config = config
        self.store = store
        self.adapters = adapters
        self.metrics = metrics
        self.clock = clock
        self.wake = wake
        self.connections: dict[str, ConnectionConfig] = {c.name: c for c in config.connections}
        self._postgres = not store.is_sqlite
        self.faults = faults if faults is not None else installed_faults()
        self._senders: dict[str, Any] = {}
        self._secret: str | None = None
        #: The link of each row claimed and not yet sent, read in the claim's transaction.
        self._claimed: dict[tuple[int, str], LinkRow] = {}
        #: Successes finishing together are recorded in one transaction (group commit).
        self._done: GroupCommit[_Done, ClaimLostError | None] = GroupCommit(
            store, _record_done, max_batch=64, isolate=True
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.config.engine.write_lease)

    @property
    def lease_margin(self) -> timedelta:
        return timedelta(seconds=min(LEASE_MARGIN, self.config.engine.write_lease / 4))

    async def record_done(
        self, row: OutboxRow, now: datetime, consequences: Callable[[Connection], None]
    ) -> None:
        """Mark a proven write done, with its ``consequences`` (ledger, link, follow-up
        rows, audit events), atomically; :class:`ClaimLostError` (nothing recorded) unless
        this claim still owns the row.

        Successes finishing while another is being recorded share its next transaction;
        a row whose claim was lost writes nothing there (the fenced update comes first
        and changes no row), and should the shared transaction fail, each success is
        recorded again in a transaction of its own."""
        lost = await self._done.submit(_Done(row, now, consequences))
        if lost is not None:
            raise lost

    async def claim(self, limit: int) -> list[OutboxRow]:
        """Claim up to ``limit`` due writes (see ``repo.claim_outbox``)."""
        now = self.clock.now()
        lease = self.lease

        def claim(c: Connection) -> tuple[list[OutboxRow], dict[int, LinkRow]]:
            rows = repo.claim_outbox(c, now, limit=limit, lease=lease, postgres=self._postgres)
            return rows, repo.links_by_id(c, {row.link_id for row in rows}) if rows else {}

        rows, links = await self.store.run(claim)
        for row in rows:
            link = links.get(row.link_id)
            if link is not None and row.claim_token is not None:
                self._claimed[row.id, row.claim_token] = link
        return rows

    async def dispatch_once(self, limit: int = 16) -> int:
        """Claim the writes due now and send them (in parallel across tickets, in order
        within one), waiting for all of them: for tests and one-shot runs.  The daemon
        uses :meth:`run`, which never waits for a batch."""
        rows = await self.claim(limit)
        if rows:
            await asyncio.gather(*(self.send(row) for row in rows))
        await self.refresh_depth()
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Send due writes until ``stop`` is set, as a continuous pool.

        At most ``engine.dispatch_concurrency`` writes are in flight, each its own task;
        when one finishes (or the engine queues new writes) the free slots are filled
        again at once, so a slow write (a long timeout, a target that is down) holds up
        only its own ticket.  Writes in flight when ``stop`` is set are finished.
        """
        eng = self.config.engine
        signal = self.wake.listener()
        running: set[asyncio.Task[None]] = set()
        depth_at = -math.inf
        try:
            while not stop.is_set():
                signal.clear()
                free = eng.dispatch_concurrency - len(running)
                if free > 0:
                    try:
                        rows = await self.claim(free)
                    except Exception as exc:  # noqa: BLE001 - the store is down: try again
                        log.error("dispatch_claim_failed", error=f"{type(exc).__name__}: {exc}")
                        rows = []
                    for row in rows:
                        running.add(asyncio.create_task(self.send(row), name=f"write-{row.id}"))
                if time.monotonic() - depth_at >= max(eng.dispatch_interval, DEPTH_INTERVAL):
                    depth_at = time.monotonic()
                    try:
                        await self.refresh_depth()
                    except Exception as exc:  # noqa: BLE001 - metrics only
                        log.warning("outbox_depth_failed", error=str(exc))
                waiter = asyncio.ensure_future(signal.wait())
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait(
                        {waiter, stopper, *running},
                        timeout=eng.dispatch_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                    stopper.cancel()
                running = {task for task in running if not task.done()}
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def refresh_depth(self) -> None:
        depth = await self.store.run(repo.outbox_depth)
        for state in ("pending", "sending", "done", "dead", "cancelled"):
            self.metrics.outbox_depth.labels(state).set(depth.get(state, 0))
        self.metrics.dead_letters.set(depth.get("dead", 0))

    async def send(self, row: OutboxRow) -> None:
        """Send one claimed write and record its outcome; never raises.

        Whatever happens (even an unexpected error while recording a failure), the row
        ends done, pending again or dead, or, when the store cannot be written at all,
        due again once its lease runs out: never left 'sending' by a live process.
        """
        structlog.contextvars.bind_contextvars(outbox_id=row.id, link_id=row.link_id)
        claimed = self._claimed.get((row.id, row.claim_token)) if row.claim_token else None
        if claimed is not None:
            bind_ticket(claimed)
        try:
            try:
                await self._execute(row)
            except ClaimLostError:
                self._lost(row)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
                try:
                    await self._failed(row, exc)
                except ClaimLostError:
                    self._lost(row)
            else:
                self.metrics.writes.labels(row.target_system, row.operation, "ok").inc()
        except Exception as exc:  # noqa: BLE001 - recording failed: fall back, never stick
            await self._fallback(row, exc)
        finally:
            structlog.contextvars.unbind_contextvars("outbox_id", *TICKET_KEYS)

    def _lost(self, row: OutboxRow) -> None:
        log.warning(
            "write_claim_lost",
            operation=row.operation,
            target=row.target_system,
            attempts=row.attempts,
            detail="the lease ran out and another claim took the write over; "
            "nothing of this attempt was recorded",
        )
        self.metrics.claims_lost.labels(row.target_system, row.operation).inc()
        self.metrics.writes.labels(row.target_system, row.operation, "lost").inc()

    async def _fallback(self, row: OutboxRow, exc: BaseException) -> None:
        """Recording the outcome failed: put the row back for later, as uncertain."""
        error = f"{type(exc).__name__}: {exc}"
        log.error("write_record_failed", operation=row.operation, error=error, exc_info=exc)
        at = self.clock.now() + timedelta(seconds=self.config.engine.backoff_max)
        try:
            await self.store.run(
                lambda c: repo.outbox_retry(
                    c, row.id, at=at, error=error, uncertain=True, token=row.claim_token
                )
            )
        except ClaimLostError:
            self._lost(row)
        except Exception as again:  # noqa: BLE001 - the store is down: the lease expires
            log.error(
                "write_left_to_lease",
                operation=row.operation,
                error=f"{type(again).__name__}: {again}",
                detail="claimed again, as uncertain, once its lease runs out",
            )

    def _deadline_at(self, row: OutboxRow) -> datetime:
        start = row.deadline_from or row.created_at
        return start + timedelta(seconds=self.config.engine.write_deadline)

    def _delay(self, row: OutboxRow, exc: BaseException) -> float:
        """Seconds until the next attempt: the target's ``Retry-After`` (capped), or an
        exponential backoff with jitter."""
        eng = self.config.engine
        if isinstance(exc, RateLimitedError):
            asked = _seconds(exc.retry_after, eng.retry_after_max)
            if asked is not None:
                return asked
        doublings = min(max(0, row.attempts - 1), _MAX_DOUBLINGS)
        delay: float = min(eng.backoff_max, eng.backoff_min * 2.0**doublings)
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter

    async def _failed(self, row: OutboxRow, exc: BaseException) -> None:
        eng = self.config.engine
        now = self.clock.now()
        error = f"{type(exc).__name__}: {exc}"
        permanent = isinstance(exc, PermanentError)
        if not isinstance(exc, AdapterError):
            log.error("write_crashed", operation=row.operation, error=error, exc_info=exc)
        deadline_at = self._deadline_at(row)
        if not permanent and row.attempts < eng.max_attempts and now >= deadline_at:
            error = (
                f"past its write deadline ({eng.write_deadline:g}s after it was queued, "
                f"at {deadline_at.isoformat()}); last error: {error}"
            )
        if permanent or row.attempts >= eng.max_attempts or now >= deadline_at:
            token = row.claim_token

            def commit(c: Connection) -> None:
                repo.outbox_dead(c, row.id, error=error, token=token)
                if row.operation == "add_note":
                    repo.ledger_dead(c, row.key)
                repo.add_event(
                    c,
                    "write_dead",
                    now=now,
                    link_id=row.link_id,
                    system=row.target_system,
                    operation=row.operation,
                    error=error,
                    attempts=row.attempts,
                )

            await self.store.run(commit)
            log.error(
                "write_dead_lettered",
                operation=row.operation,
                target=row.target_system,
                attempts=row.attempts,
                error=error,
            )
            self.metrics.writes.labels(row.target_system, row.operation, "dead").inc()
            return
        delay = self._delay(row, exc)
        uncertain = (
            bool(row.uncertain)
            or not isinstance(exc, AdapterError)
            or (isinstance(exc, TransientError) and exc.uncertain)
        )
        retry_at = min(now + timedelta(seconds=delay), deadline_at)
        await self.store.run(
            lambda c: repo.outbox_retry(
                c, row.id, at=retry_at, error=error, uncertain=uncertain, token=row.claim_token
            )
        )
        log.warning(
            "write_retry",
            operation=row.operation,
            target=row.target_system,
            attempts=row.attempts,
            retry_at=retry_at.isoformat(),
            error=error,
        )
        self.metrics.writes.labels(row.target_system, row.operation, "retry").inc()

    async def _execute(self, row: OutboxRow) -> None:
        """Run the row's operation through its handler; a row that cannot be read is refused
        as a permanent failure, so it is dead-lettered with the reason.

        Right before sending, the lease is renewed (``ClaimLostError`` when this claim no
        longer owns the row), unless the row was claimed a moment ago (its link was read
        by the claim, and at least half of its lease is left); the HTTP calls inside get
        the lease, less a margin, as their deadline."""
        token = row.claim_token
        link = self._claimed.pop((row.id, token), None) if token is not None else None
        try:
            operation = parse_operation(row.operation, row.payload)
        except GarbledOperationError as exc:
            raise PermanentError(str(exc), system=row.target_system) from None
        lease = self.lease
        until = row.lease_until
        if link is None or until is None or until - self.clock.now() < lease / 2:
            # not sent right after its claim: renew the lease (refused when it ran out)

            def renew(c: Connection) -> tuple[datetime | None, LinkRow | None]:
                until = repo.outbox_renew(c, row.id, token=token, now=self.clock.now(), lease=lease)
                return until, repo.link_by_id(c, row.link_id)

            until, link = await self.store.run(renew)
            if until is None:
                raise ClaimLostError(row.id)
        # else: claimed a moment ago, so the claim's own lease is still fresh: nobody else
        # can take the row before it runs out, and the calls below stop before it does
        assert link is not None
        bind_ticket(link)
        stop_at = until - self.lease_margin
        with deadline(lambda: (stop_at - self.clock.now()).total_seconds()):
            await HANDLERS[type(operation)](self, _Job(row, link), operation)

    def _adapter(self, job: _Job) -> TicketAdapter:
        return self.adapters[job.row.target_system]

    def _connection(self, job: _Job) -> ConnectionConfig:
        return self.connections[job.link.connection]

    def _target_side(self, job: _Job) -> Side:
        return Side.VENDOR if job.row.target_system == job.link.vendor_system else Side.PSA

    def _target_ticket(self, job: _Job) -> str:
        """The linked ticket's id at the row's target; transient while it is not created."""
        side = self._target_side(job)
        ticket_id = job.link.vendor_ticket_id if side is Side.VENDOR else job.link.psa_ticket_id
        if ticket_id is None:
            raise TransientError(
                "the vendor ticket is not created yet", system=job.row.target_system
            )
        return str(ticket_id)

    async def _sender(self, op: Notify) -> Any:
        """The cached sender for the notification's channel and target, and its label."""
        from ticketbridge.notify import build_sender

        channel, target = op.channel, op.target
        if channel == "email":
            smtp = self.config.notify.smtp
            if smtp is None:
                raise PermanentError(
                    "no notify.smtp settings: e-mail actions cannot be sent", system="notify"
                )
            cache_key, settings = "email", dict(smtp)
        else:
            if isinstance(target, dict):
                problems: list[tuple[str, str, str]] = []
                ((kind, ref),) = target.items()
                url = read_secret(kind, ref, f"notify target of {channel}", problems)
                if url is None:
                    raise PermanentError("; ".join(m for _, m, _ in problems), system="notify")
            else:
                url = str(target or "")
            cache_key, settings = f"{channel}:{url}", {"url": url}
        sender = self._senders.get(cache_key)
        if sender is None:
            try:
                sender = build_sender(channel, settings)
            except ConfigError as exc:
                raise PermanentError(str(exc), system="notify") from None
            self._senders[cache_key] = sender
        return sender

    def marker_secret_is(self, secret: str) -> None:
        """Use ``secret`` (settled by the engine at start) instead of reading it later."""
        self._secret = secret

    async def marker_secret(self) -> str:
        """The installation's marker secret (read or made once, then kept)."""
        if self._secret is None:
            from ticketbridge.engine.identity import marker_secret

            now = self.clock.now()
            self._secret = await self.store.run(lambda c: marker_secret(self.config, c, now))
        return self._secret

    async def close_senders(self) -> None:
        for sender in self._senders.values():
            try:
                await sender.aclose()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("sender_close_failed", error=str(exc))
        self._senders.clear()

    def recover(self) -> None:
        """After a crash: on SQLite (one process, lock held) writes left in flight are due
        again at once, marked uncertain; on PostgreSQL their leases expire instead."""
        if not self.store.is_sqlite:
            return
        with self.store.tx() as c:
            count = repo.outbox_recover(c)
        if count:
            log.warning(
                "writes_recovered",
                count=count,
                detail="left in flight by a stopped process; looked up before resending",
            )


async def _create_ticket(d: Dispatcher, job: _Job, op: CreateTicket) -> None:
    """Open the vendor ticket (found by key first when an earlier attempt may have done it),
    then record its id on the link and queue the number's write-back to the PSA."""
    row, link, conn = job.row, job.link, d._connection(job)
    adapter = d._adapter(job)
    # always looked up first: an earlier attempt, or a store lost since, may have made it
    ref = await adapter.find_created(row.key)
    found = ref is not None
    if ref is None:
        ref = await adapter.create_ticket(op.draft, row.key)
    d.faults.hit("after_send", op.op)
    now = d.clock.now()

    def commit(c: Connection) -> None:
        repo.update_link(
            c,
            link.id,
            vendor_ticket_id=ref.id,
            vendor_number=ref.number,
            state="open",
            updated_at=now,
        )
        repo.add_event(
            c,
            "vendor_ticket_created",
            now=now,
            link_id=link.id,
            connection=conn.name,
            system=row.target_system,
            ticket_id=ref.id,
            number=ref.number,
            found_existing=found,
        )
        if conn.write_back_number and ref.number:
            write_back = UpdateTicket.of(external_ref=ref.number)
            repo.enqueue(
                c,
                link_id=link.id,
                target_system=link.psa_system,
                operation=write_back.op,
                key=idempotency_key(row.target_system, ref.id, link.psa_system, "write_back"),
                payload=write_back.to_json(),
                now=now,
            )
        repo.add_hint(
            c,
            system=row.target_system,
            delivery_key=f"{LOCAL_HINT}created:{ref.id}",
            ticket_id=ref.id,
            now=now,
        )

    await d.record_done(row, now, commit)
    log.info(
        "vendor_ticket_created",
        connection=conn.name,
        vendor_ticket=ref.label,
        psa_ticket=link.psa_number or link.psa_ticket_id,
        found_existing=found,
    )
    d.wake.set()


async def _add_note(d: Dispatcher, job: _Job, op: AddNote) -> None:
    """Add the note (found by key first when an earlier attempt may have added it) and mark
    its ledger entry done."""
    row, link, conn = job.row, job.link, d._connection(job)
    ticket_id = d._target_ticket(job)
    adapter = d._adapter(job)
    draft = op.draft
    if d.config.systems[row.target_system].visible_marker:
        secret = await d.marker_secret()
        marker = marker_for(row.key, secret, row.target_system, ticket_id)
        draft = NoteDraft(f"{draft.text}\n\n{marker}", draft.visibility)
    since = op.not_before or row.source_at  # a write is never older than what caused it
    note_id = await adapter.find_note(ticket_id, row.key, draft, since) if row.uncertain else None
    found = note_id is not None
    if note_id is None:
        note_id = await adapter.add_note(ticket_id, draft, row.key)
    d.faults.hit("after_send", op.op)
    now = d.clock.now()

    def commit(c: Connection) -> None:
        repo.ledger_done(c, row.key, note_id, now)
        repo.add_event(
            c,
            "note_mirrored",
            now=now,
            link_id=link.id,
            connection=conn.name,
            system=row.target_system,
            ticket_id=ticket_id,
            source_note_id=op.source_note_id,
            target_note_id=note_id,
            visibility=op.visibility.value,
            found_existing=found,
        )

    await d.record_done(row, now, commit)
    direction = "psa_to_vendor" if d._target_side(job) is Side.VENDOR else "vendor_to_psa"
    if row.source_at is not None:
        d.metrics.mirror_latency.labels(direction).observe(
            max(0.0, (now - row.source_at).total_seconds())
        )
    log.info(
        "note_mirrored",
        connection=conn.name,
        direction=direction,
        target_note=note_id,
        found_existing=found,
    )


async def _update_ticket(d: Dispatcher, job: _Job, op: UpdateTicket) -> None:
    """Write the fields (idempotent by nature) and remember a written status on the link."""
    row, link, conn = job.row, job.link, d._connection(job)
    ticket_id = d._target_ticket(job)
    await d._adapter(job).update_ticket(ticket_id, op.change)
    d.faults.hit("after_send", op.op)
    now = d.clock.now()
    payload = op.to_json()
    written: dict[str, Any] = {}
    if op.change.status is not None:
        side = d._target_side(job)
        column = "vendor_status_written" if side is Side.VENDOR else "psa_status_written"
        written[column] = op.change.status

    def commit(c: Connection) -> None:
        if written:
            repo.update_link(c, link.id, updated_at=now, **written)
        repo.add_event(
            c,
            "ticket_updated",
            now=now,
            link_id=link.id,
            connection=conn.name,
            system=row.target_system,
            ticket_id=ticket_id,
            **payload,
        )

    await d.record_done(row, now, commit)
    log.info("ticket_updated", connection=conn.name, target=row.target_system, **payload)


async def _notify(d: Dispatcher, job: _Job, op: Notify) -> None:
    """Send an e-mail or chat message a rule asked for; the outbox key is its identity."""
    from ticketbridge.notify import Notification

    row, link = job.row, job.link
    sender = await d._sender(op)
    label = str(op.target or "") if op.channel == "email" else str(op.recipient or op.channel)
    ticket = {
        "psa_ticket": link.psa_number or link.psa_ticket_id,
        "vendor_ticket": link.vendor_number,
        "connection": link.connection,
    }
    message_id = await sender.deliver(
        Notification(
            channel=op.channel,
            target=label,
            subject=op.subject,
            text=op.text,
            key=row.key,
            context={"event": "escalation", "ticket": ticket},
        )
    )
    d.faults.hit("after_send", op.op)
    now = d.clock.now()

    def commit(c: Connection) -> None:
        repo.add_event(
            c,
            "notified",
            now=now,
            link_id=link.id,
            connection=link.connection,
            channel=op.channel,
            recipient=op.recipient,
            message_id=message_id,
        )

    await d.record_done(row, now, commit)
    d.metrics.notifications.labels(op.channel, "sent").inc()
    log.info("notified", channel=op.channel, recipient=op.recipient)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _why(row: OutboxRow, now: datetime) -> str:
    """Why ``row`` itself is not being sent right now."""
    error = (row.last_error or "").strip()
    if row.state == "dead":
        return f"dead: {error or 'no reason recorded'}"
    if row.state == "sending":
        if row.lease_until is not None and row.lease_until > now:
            return f"lease held by another process until {_stamp(row.lease_until)}"
        return "lease ran out: due again, looked up on the target first"
    if row.next_attempt_at > now:
        return (
            f"retry at {_stamp(row.next_attempt_at)}: {error}"
            if error
            else (f"due at {_stamp(row.next_attempt_at)}")
        )
    return "due now"


def describe_waits(conn: Connection, rows: list[OutboxRow], now: datetime) -> dict[int, str]:
    """For each open row, what it waits on, in an operator's words (``outbox list``):
    ``retry at …: <last error>``, ``behind #123 (dead: <reason>)``, ``vendor ticket not
    created yet``, ``lease held by another process until …``, ``due now``."""
    heads = repo.outbox_blockers(conn, rows)
    links: dict[int, LinkRow | None] = {}
    waits: dict[int, str] = {}
    for row in rows:
        if row.link_id not in links:
            links[row.link_id] = repo.link_by_id(conn, row.link_id)
        link = links[row.link_id]
        head = heads.get(row.id)
        missing = (
            link is not None
            and row.target_system == link.vendor_system
            and link.vendor_ticket_id is None
            and row.operation not in ("create_ticket", *repo.UNORDERED_OPERATIONS)
        )
        if row.state != "pending" or (head is None and not missing):
            waits[row.id] = _why(row, now)
            continue
        parts = ["vendor ticket not created yet"] if missing else []
        if head is not None:
            parts.append(f"behind #{head.id} ({head.operation}, {_why(head, now)})")
        waits[row.id] = "; ".join(parts)
    return waits


Handler = Callable[[Dispatcher, _Job, Any], Awaitable[None]]

#: The handler of every operation type; every type in ``outbox.OPERATIONS`` has one.
HANDLERS: Mapping[type[Operation], Handler] = {
    CreateTicket: _create_ticket,
    AddNote: _add_note,
    UpdateTicket: _update_ticket,
    Notify: _notify,
}
