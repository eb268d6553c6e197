"""The dispatcher: sends the outbox's writes, each with its idempotency key.

Rows are claimed oldest first, at most one per (link, target), under a lease.
A success is recorded in the same transaction as its consequences (ledger,
link, follow-up rows); a failure is retried with backoff (``Retry-After``
wins), looked up on the target first when it may have taken effect, and
dead-lettered after ``engine.max_attempts`` or at once when the target refuses.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Row

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.clock import Clock
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig, read_secret
from ticketbridge.domain import (
    Contact,
    FieldChange,
    NoteDraft,
    Side,
    TicketDraft,
    Visibility,
    idempotency_key,
)
from ticketbridge.errors import (
    AdapterError,
    ConfigError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store, repo

__all__ = ["Dispatcher", "draft_payload"]

log = structlog.get_logger("ticketbridge.engine")

#: Prefix of hints the engine leaves itself (re-read a ticket it just created or linked).
LOCAL_HINT = "local:"


@dataclass
class _Fault:
    """Test hook: ``TICKETBRIDGE_FAULT=after_send:add_note[:N]`` kills the process with
    SIGKILL right after the N-th such write reached the target and before it is recorded."""

    point: str | None = None
    operation: str | None = None
    nth: int = 1
    seen: int = 0

    @classmethod
    def from_env(cls) -> _Fault:
        spec = os.environ.get("TICKETBRIDGE_FAULT", "")
        if not spec:
            return cls()
        parts = spec.split(":")
        nth = int(parts[2]) if len(parts) > 2 else 1
        return cls(parts[0], parts[1] if len(parts) > 1 else None, nth)

    def hit(self, point: str, operation: str) -> None:
        if self.point != point or self.operation not in (None, operation):
            return
        self.seen += 1
        if self.seen == self.nth:
            log.warning("fault_injected", point=point, operation=operation)
            os.kill(os.getpid(), signal.SIGKILL)


class Dispatcher:
    def __init__(
        self,
        config: TicketBridgeConfig,
        store: Store,
        adapters: Mapping[str, TicketAdapter],
        metrics: Metrics,
        clock: Clock,
        wake: asyncio.Event,
    ) -> None:
        self.config = config
        self.store = store
        self.adapters = adapters
        self.metrics = metrics
        self.clock = clock
        self.wake = wake
        self.connections: dict[str, ConnectionConfig] = {c.name: c for c in config.connections}
        self._postgres = not store.is_sqlite
        self._fault = _Fault.from_env()
        self._senders: dict[str, Any] = {}

    async def dispatch_once(self, limit: int = 16) -> int:
        """Send every due write (in parallel across tickets, in order within one)."""
        now = self.clock.now()
        with self.store.tx() as c:
            rows = repo.claim_outbox(
                c,
                now,
                limit=limit,
                lease=timedelta(seconds=self.config.engine.write_lease),
                postgres=self._postgres,
            )
        if rows:
            await asyncio.gather(*(self._send(row) for row in rows))
        with self.store.tx() as c:
            depth = repo.outbox_depth(c)
        for state in ("pending", "sending", "done", "dead", "cancelled"):
            self.metrics.outbox_depth.labels(state).set(depth.get(state, 0))
        return len(rows)

    async def _send(self, row: Row[Any]) -> None:
        structlog.contextvars.bind_contextvars(outbox_id=row.id)
        try:
            await self._execute(row)
            self.metrics.writes.labels(row.target_system, row.operation, "ok").inc()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
            self._failed(row, exc)
        finally:
            structlog.contextvars.unbind_contextvars("outbox_id")

    def _failed(self, row: Row[Any], exc: BaseException) -> None:
        eng = self.config.engine
        now = self.clock.now()
        error = f"{type(exc).__name__}: {exc}"
        permanent = isinstance(exc, PermanentError)
        if not isinstance(exc, AdapterError):
            log.error("write_crashed", operation=row.operation, error=error, exc_info=exc)
        if permanent or row.attempts >= eng.max_attempts:
            with self.store.tx() as c:
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
        with self.store.tx() as c:
            repo.outbox_retry(
                c, row.id, at=now + timedelta(seconds=delay), error=error, uncertain=uncertain
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

    async def _execute(self, row: Row[Any]) -> None:
        with self.store.tx() as c:
            link = repo.link_by_id(c, row.link_id)
        assert link is not None
        payload: dict[str, Any] = dict(row.payload)
        if row.operation == "notify":
            await self._notify(row, link, payload)
            return
        adapter = self.adapters[row.target_system]
        conn = self.connections[link.connection]
        target_side = Side.VENDOR if row.target_system == link.vendor_system else Side.PSA
        if row.operation == "create_ticket":
            ref = await adapter.find_created(row.key) if row.uncertain else None
            found = ref is not None
            if ref is None:
                ref = await adapter.create_ticket(draft_from_payload(payload), row.key)
            self._fault.hit("after_send", row.operation)
            now = self.clock.now()
            with self.store.tx() as c:
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
                    repo.enqueue(
                        c,
                        link_id=link.id,
                        target_system=link.psa_system,
                        operation="update_ticket",
                        key=idempotency_key(str(link.id), "write_back", ref.id),
                        payload={"external_ref": ref.number},
                        now=now,
                    )
                repo.add_hint(
                    c,
                    system=row.target_system,
                    delivery_key=f"{LOCAL_HINT}created:{ref.id}",
                    ticket_id=ref.id,
                    now=now,
                )
            log.info(
                "vendor_ticket_created",
                connection=conn.name,
                vendor_ticket=ref.label,
                psa_ticket=link.psa_number or link.psa_ticket_id,
                found_existing=found,
            )
            self.wake.set()
            return
        ticket_id = link.vendor_ticket_id if target_side is Side.VENDOR else link.psa_ticket_id
        if ticket_id is None:
            raise TransientError("the vendor ticket is not created yet", system=row.target_system)
        if row.operation == "add_note":
            note_id = await adapter.find_note(ticket_id, row.key) if row.uncertain else None
            found = note_id is not None
            if not found:
                note_id = await adapter.add_note(
                    ticket_id,
                    NoteDraft(payload["text"], Visibility(payload["visibility"])),
                    row.key,
                )
            self._fault.hit("after_send", row.operation)
            now = self.clock.now()
            with self.store.tx() as c:
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
                    source_note_id=payload.get("source_note_id"),
                    target_note_id=note_id,
                    visibility=payload["visibility"],
                    found_existing=found,
                )
            direction = "psa_to_vendor" if target_side is Side.VENDOR else "vendor_to_psa"
            if row.source_at is not None:
                self.metrics.mirror_latency.labels(direction).observe(
                    max(0.0, (now - row.source_at).total_seconds())
                )
            log.info(
                "note_mirrored",
                connection=conn.name,
                direction=direction,
                target_note=note_id,
                found_existing=found,
            )
            return
        if row.operation == "update_ticket":
            change = FieldChange(
                status=payload.get("status"),
                priority=payload.get("priority"),
                external_ref=payload.get("external_ref"),
                queue=payload.get("queue"),
                group=payload.get("group"),
                assignee=payload.get("assignee"),
                fields=dict(payload.get("fields") or {}),
            )
            await adapter.update_ticket(ticket_id, change)
            self._fault.hit("after_send", row.operation)
            now = self.clock.now()
            written: dict[str, Any] = {}
            if change.status is not None:
                written[
                    "vendor_status_written" if target_side is Side.VENDOR else "psa_status_written"
                ] = change.status
            with self.store.tx() as c:
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
            log.info("ticket_updated", connection=conn.name, target=row.target_system, **payload)
            return
        raise PermanentError(f"unknown outbox operation {row.operation!r}")

    async def _notify(self, row: Row[Any], link: Row[Any], payload: dict[str, Any]) -> None:
        """Send an e-mail or chat message a rule asked for; the outbox key is its identity."""
        from ticketbridge.notify import Notification, build_sender

        channel = str(payload["channel"])
        target = payload.get("target")
        if channel == "email":
            smtp = self.config.notify.smtp
            if smtp is None:
                raise PermanentError(
                    "no notify.smtp settings: e-mail actions cannot be sent", system="notify"
                )
            cache_key, settings = "email", dict(smtp)
            label = str(target or "")
        else:
            if isinstance(target, dict):
                problems: list[tuple[str, str, str]] = []
                ((kind, ref),) = target.items()
                url = read_secret(str(kind), str(ref), f"notify target of {channel}", problems)
                if url is None:
                    raise PermanentError("; ".join(m for _, m, _ in problems), system="notify")
            else:
                url = str(target or "")
            cache_key, settings = f"{channel}:{url}", {"url": url}
            label = str(payload.get("recipient") or channel)
        sender = self._senders.get(cache_key)
        if sender is None:
            try:
                sender = build_sender(channel, settings)
            except ConfigError as exc:
                raise PermanentError(str(exc), system="notify") from None
            self._senders[cache_key] = sender
        ticket = {
            "psa_ticket": link.psa_number or link.psa_ticket_id,
            "vendor_ticket": link.vendor_number,
            "connection": link.connection,
        }
        message_id = await sender.deliver(
            Notification(
                channel=channel,
                target=label,
                subject=str(payload.get("subject") or ""),
                text=str(payload.get("text") or ""),
                key=row.key,
                context={"event": "escalation", "ticket": ticket},
            )
        )
        self._fault.hit("after_send", row.operation)
        now = self.clock.now()
        with self.store.tx() as c:
            repo.outbox_done(c, row.id, now)
            repo.add_event(
                c,
                "notified",
                now=now,
                link_id=link.id,
                connection=link.connection,
                channel=channel,
                recipient=payload.get("recipient"),
                message_id=message_id,
            )
        self.metrics.notifications.labels(channel, "sent").inc()
        log.info("notified", channel=channel, recipient=payload.get("recipient"))

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


def draft_payload(draft: TicketDraft) -> dict[str, Any]:
    contact = draft.contact
    return {
        "summary": draft.summary,
        "description": draft.description,
        "priority": draft.priority,
        "account": dict(draft.account),
        "contact": None
        if contact is None
        else {"name": contact.name, "email": contact.email, "phone": contact.phone},
        "company_name": draft.company_name,
        "external_ref": draft.external_ref,
    }


def draft_from_payload(payload: dict[str, Any]) -> TicketDraft:
    contact = payload.get("contact")
    return TicketDraft(
        summary=payload["summary"],
        description=payload["description"],
        priority=payload.get("priority"),
        account=payload.get("account") or {},
        contact=Contact(**contact) if contact else None,
        company_name=payload.get("company_name"),
        external_ref=payload.get("external_ref"),
    )
