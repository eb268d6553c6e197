"""The dispatcher: sends the outbox's writes, each with its idempotency key.

Rows are claimed oldest first, at most one per (link, target), under a lease.
A success is recorded in the same transaction as its consequences (ledger,
link, follow-up rows); a failure is retried with backoff (``Retry-After``
wins), looked up on the target first when it may have taken effect, and
dead-lettered after ``engine.max_attempts`` or at once when the target refuses.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.clock import Clock
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig, read_secret
from ticketbridge.domain import NoteDraft, Side, idempotency_key, marker_for
from ticketbridge.errors import (
    AdapterError,
    ConfigError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
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
from ticketbridge.store.rows import LinkRow, OutboxRow
from ticketbridge.testing import Faults, installed_faults

__all__ = ["HANDLERS", "Dispatcher", "draft_payload"]

log = structlog.get_logger("ticketbridge.engine")

#: Prefix of hints the engine leaves itself (re-read a ticket it just created or linked).
LOCAL_HINT = "local:"


@dataclass(frozen=True, slots=True)
class _Job:
    """One claimed outbox row, its link, and the operation it carries."""

    row: OutboxRow
    link: LinkRow


class Dispatcher:
    def __init__(
        self,
        config: TicketBridgeConfig,
        store: Store,
        adapters: Mapping[str, TicketAdapter],
        metrics: Metrics,
        clock: Clock,
        wake: asyncio.Event,
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

    async def dispatch_once(self, limit: int = 16) -> int:
        """Send every due write (in parallel across tickets, in order within one)."""
        now = self.clock.now()
        lease = timedelta(seconds=self.config.engine.write_lease)
        rows = await self.store.run(
            lambda c: repo.claim_outbox(c, now, limit=limit, lease=lease, postgres=self._postgres)
        )
        if rows:
            await asyncio.gather(*(self._send(row) for row in rows))
        depth = await self.store.run(repo.outbox_depth)
        for state in ("pending", "sending", "done", "dead", "cancelled"):
            self.metrics.outbox_depth.labels(state).set(depth.get(state, 0))
        return len(rows)

    async def _send(self, row: OutboxRow) -> None:
        structlog.contextvars.bind_contextvars(outbox_id=row.id)
        try:
            await self._execute(row)
            self.metrics.writes.labels(row.target_system, row.operation, "ok").inc()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
            await self._failed(row, exc)
        finally:
            structlog.contextvars.unbind_contextvars("outbox_id")

    async def _failed(self, row: OutboxRow, exc: BaseException) -> None:
        eng = self.config.engine
        now = self.clock.now()
        error = f"{type(exc).__name__}: {exc}"
        permanent = isinstance(exc, PermanentError)
        if not isinstance(exc, AdapterError):
            log.error("write_crashed", operation=row.operation, error=error, exc_info=exc)
        if permanent or row.attempts >= eng.max_attempts:

            def commit(c: Connection) -> None:
                repo.outbox_dead(c, row.id, error=error)
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
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            delay = exc.retry_after
        else:
            delay = min(eng.backoff_max, eng.backoff_min * 2 ** (row.attempts - 1))
            delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter
        uncertain = (
            bool(row.uncertain)
            or not isinstance(exc, AdapterError)
            or (isinstance(exc, TransientError) and exc.uncertain)
        )
        retry_at = now + timedelta(seconds=delay)
        await self.store.run(
            lambda c: repo.outbox_retry(c, row.id, at=retry_at, error=error, uncertain=uncertain)
        )
        log.warning(
            "write_retry",
            operation=row.operation,
            target=row.target_system,
            attempts=row.attempts,
            retry_in=round(delay, 2),
            error=error,
        )
        self.metrics.writes.labels(row.target_system, row.operation, "retry").inc()

    async def _execute(self, row: OutboxRow) -> None:
        """Run the row's operation through its handler; a row that cannot be read is refused
        as a permanent failure, so it is dead-lettered with the reason."""
        try:
            operation = parse_operation(row.operation, row.payload)
        except GarbledOperationError as exc:
            raise PermanentError(str(exc), system=row.target_system) from None
        link = await self.store.run(lambda c: repo.link_by_id(c, row.link_id))
        assert link is not None
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
        repo.outbox_done(c, row.id, now)
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

    await d.store.run(commit)
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
        repo.outbox_done(c, row.id, now)
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

    await d.store.run(commit)
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
        repo.outbox_done(c, row.id, now)
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

    await d.store.run(commit)
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
        repo.outbox_done(c, row.id, now)
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

    await d.store.run(commit)
    d.metrics.notifications.labels(op.channel, "sent").inc()
    log.info("notified", channel=op.channel, recipient=op.recipient)


Handler = Callable[[Dispatcher, _Job, Any], Awaitable[None]]

#: The handler of every operation type; every type in ``outbox.OPERATIONS`` has one.
HANDLERS: Mapping[type[Operation], Handler] = {
    CreateTicket: _create_ticket,
    AddNote: _add_note,
    UpdateTicket: _update_ticket,
    Notify: _notify,
}
