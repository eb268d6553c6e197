"""Supplier SLA clocks on links: events in, clocks and flags out.

Clocks are computed from the link's stored event history, stamped with the
source systems' own times, so a daemon that was down computes the same result
as one that watched live ("repair").  Each link's checkpoint is stored with
the next instant something can happen to it; the sweep looks only at clocks
whose instant has come, so a breach is flagged within one tick even when
nothing else happens.  Every flag is recorded once (``sla_flags``), in the
same transaction as the PSA note, status change and breach investigation it
causes: exactly once across restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from ticketbridge import operations as outbox
from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig
from ticketbridge.domain import StatusClass, Visibility, idempotency_key
from ticketbridge.duration import format_span as format_duration
from ticketbridge.log import ticket_context
from ticketbridge.metrics import Metrics
from ticketbridge.sla.ball import StatusObservation, events_from_observations
from ticketbridge.sla.calendar import BusinessCalendar
from ticketbridge.sla.clock import (
    ClockPolicy,
    EventKind,
    MetricSnapshot,
    SlaEvent,
    SlaSnapshot,
    SlaState,
    repair,
    snapshot,
    sweep_status,
)
from ticketbridge.sla.models import BallConfig, ContractConfig, SideStatus, select_contract
from ticketbridge.store import repo
from ticketbridge.store import sla as sla_store
from ticketbridge.store.rows import ClockRow, EventRow, LinkRow

__all__ = ["SlaKeeper", "format_duration", "sla_events"]

log = structlog.get_logger("ticketbridge.sla")

_LABELS = {
    "acknowledgment": "acknowledgment",
    "update_cadence": "update cadence",
    "resolution": "resolution",
}


def sla_events(rows: Sequence[EventRow], ball: BallConfig) -> list[SlaEvent]:
    """A link's audit events as supplier SLA clock events (source times, stable order).

    Each audit event ``id`` owns the sequence numbers ``8*id .. 8*id+7``, so
    events keep the order they were recorded in when their times are equal.
    """
    events: list[SlaEvent] = []
    observations: list[StatusObservation] = []
    vendor = SideStatus()
    psa = SideStatus()
    for row in rows:
        at = row.occurred_at or row.recorded_at
        detail: Mapping[str, Any] = row.detail or {}
        base = row.id * 8
        if row.kind == "vendor_ticket_seen":
            events.append(SlaEvent(at, EventKind.OPENED, base + 3))
        elif row.kind == "vendor_status_changed":
            before, vendor = vendor, _side_status(detail)
            observations.append(_observation(at, vendor, psa, row.id * 2))
            if ball.is_in_progress(vendor) and not ball.is_in_progress(before):
                events.append(SlaEvent(at, EventKind.IN_PROGRESS, base + 5))
        elif row.kind == "psa_status_changed":
            psa = _side_status(detail)
            if vendor.status is not None:
                observations.append(_observation(at, vendor, psa, row.id * 2))
        elif row.kind == "vendor_note" and detail.get("visibility") == "public":
            events.append(SlaEvent(at, EventKind.VENDOR_PUBLIC_UPDATE, base + 6))
        elif row.kind == "vendor_assigned" and detail.get("new"):
            events.append(SlaEvent(at, EventKind.ASSIGNED, base + 7, str(detail["new"])))
    events.extend(events_from_observations(ball, observations))
    return events


def _side_status(detail: Mapping[str, Any]) -> SideStatus:
    """The status a ``*_status_changed`` event recorded, with its class when known."""
    raw_class = detail.get("status_class")
    try:
        status_class = StatusClass(raw_class) if isinstance(raw_class, str) else None
    except ValueError:  # recorded by a version with other classes
        status_class = None
    return SideStatus(detail.get("new"), status_class)


def _observation(at: datetime, vendor: SideStatus, psa: SideStatus, seq: int) -> StatusObservation:
    return StatusObservation(
        at, vendor.status, vendor.status_class, psa.status, psa.status_class, seq=seq
    )


def last_vendor_action(rows: Sequence[EventRow], now: datetime) -> tuple[str, datetime | None]:
    """What the vendor did last (for breach notes and investigations)."""
    for row in reversed(rows):
        at = row.occurred_at or row.recorded_at
        if at > now:
            continue
        detail = row.detail or {}
        if row.kind == "vendor_note":
            kind = "public comment" if detail.get("visibility") == "public" else "work note"
            who = detail.get("author") or "the vendor"
            return f"{kind} by {who} at {at:%Y-%m-%d %H:%M} UTC", at
        if (
            row.kind == "vendor_status_changed"
            and not detail.get("by_us")
            and detail.get("old") is not None
        ):
            return f"status set to {detail.get('new')} at {at:%Y-%m-%d %H:%M} UTC", at
        if row.kind == "vendor_ticket_seen":
            return f"nothing since the ticket was opened at {at:%Y-%m-%d %H:%M} UTC", at
    return "nothing recorded", None


class _Lazy:
    """A link's events, read from the store only when a flag needs them."""

    __slots__ = ("_load", "_rows")

    def __init__(self, load: Callable[[], Sequence[EventRow]]) -> None:
        self._load = load
        self._rows: Sequence[EventRow] | None = None

    def __call__(self) -> Sequence[EventRow]:
        if self._rows is None:
            self._rows = self._load()
        return self._rows


def _identity(link: LinkRow) -> tuple[str, str]:
    """The vendor ticket a supplier SLA is about, by the vendor's own identity."""
    return link.vendor_system, str(link.vendor_ticket_id)


def _history(link: LinkRow, at: datetime) -> bool:
    """A crossing from before the link was made (a vendor ticket linked by hand, or a link
    re-established on a fresh or restored store): it is recorded, but the PSA is not
    written to about it again, as notes older than a link are history, not news."""
    return at < link.created_at


class SlaKeeper:
    """Computes, stores and flags the supplier SLA clocks of links."""

    def __init__(
        self,
        config: TicketBridgeConfig,
        adapters: Mapping[str, TicketAdapter],
        metrics: Metrics,
        enqueue: Callable[..., bool],
    ) -> None:
        self.config = config
        self.contracts = list(config.sla.contracts)
        self.calendars: dict[str, BusinessCalendar] = config.sla.build_calendars()
        self.connections = {c.name: c for c in config.connections}
        self.adapters = adapters
        self.metrics = metrics
        self._enqueue = enqueue
        self._balls: dict[str, BallConfig] = {}
        self._policies: dict[tuple[int, str | None], ClockPolicy] = {}
        for name in adapters:
            self._balls[name] = config.sla.ball.get(name) or BallConfig()

    @property
    def enabled(self) -> bool:
        return bool(self.contracts)

    def policy(self, link: LinkRow) -> tuple[ContractConfig, ClockPolicy] | None:
        contract = select_contract(self.contracts, link.vendor_system, link.company)
        if contract is None or contract.calendar not in self.calendars:
            return None
        # a policy depends only on its contract and priority: built once for each pair
        key = (id(contract), link.vendor_priority)
        policy = self._policies.get(key)
        if policy is None:
            policy = ClockPolicy.from_contract(
                contract, link.vendor_priority, self.calendars[contract.calendar]
            )
            self._policies[key] = policy
        return contract, policy

    def recompute(self, c: Connection, link: LinkRow, now: datetime) -> SlaSnapshot | None:
        """Rebuild a link's clocks from its whole history; store and flag them."""
        found = self.policy(link)
        if found is None or link.vendor_ticket_id is None:
            return None
        contract, policy = found
        rows = repo.link_events(c, link.id)
        events = sla_events(rows, self._balls[link.vendor_system])
        if contract.resolved_by == "vendor_or_msp":
            # the engineer closing the PSA ticket marks the vendor's case resolved
            events += [
                SlaEvent(row.occurred_at or row.recorded_at, EventKind.RESOLVED, row.id * 8 + 2)
                for row in rows
                if row.kind == "psa_ticket_closed"
            ]
        if not any(e.kind is EventKind.OPENED for e in events):
            return None
        result = repair(events, policy, now)
        for warning in result.warnings:
            log.debug("sla_input_odd", link_id=link.id, code=warning.code, detail=warning.message)
        state = result.state
        values: dict[str, Any] = {
            "contract": contract.name,
            "priority": link.vendor_priority,
            "policy_key": policy.key,
            "state": state.to_dict(),
            "next_wakeup": sweep_status(state, now).next_wakeup,
            "breached": any(
                m.breach_count
                for m in (state.acknowledgment, state.update_cadence, state.resolution)
            ),
            "updated_at": now,
        }
        if result.deferred:  # events stamped in the future: look again when they are due
            first = min(e.at for e in result.deferred)
            if values["next_wakeup"] is None or first < values["next_wakeup"]:
                values["next_wakeup"] = first
        sla_store.save_clock(c, link.id, **values)
        snap = snapshot(state, policy, now)
        self._flag(c, link, contract, snap, _Lazy(lambda: rows), now)
        return snap

    def due(self, c: Connection, now: datetime, limit: int = 500) -> list[int]:
        return sla_store.due_clocks(c, now, limit=limit)

    def sweep_one(self, c: Connection, link_id: int, now: datetime) -> None:
        """Flag what a stored clock has crossed by ``now``; set its next wake-up."""
        link = repo.link_by_id(c, link_id)
        clock = sla_store.clock_for(c, link_id)
        if link is None or clock is None:
            return
        with ticket_context(link):
            self._sweep(c, link, clock, now)

    def _sweep(self, c: Connection, link: LinkRow, clock: ClockRow, now: datetime) -> None:
        link_id = link.id
        found = self.policy(link)
        if found is None or found[1].key != clock.policy_key:
            self.recompute(c, link, now)  # contract, calendar or priority changed
            return
        contract, policy = found
        state = SlaState.from_dict(clock.state)
        snap = snapshot(state, policy, now)
        self._flag(c, link, contract, snap, _Lazy(lambda: repo.link_events(c, link_id)), now)
        sla_store.sweep_clock(
            c,
            link_id,
            next_wakeup=sweep_status(state, now).next_wakeup,
            breached=snap.breached,
            now=now,
        )

    # -- flags -------------------------------------------------------------------------
    def _flag(
        self,
        c: Connection,
        link: LinkRow,
        contract: ContractConfig,
        snap: SlaSnapshot,
        rows: _Lazy,
        now: datetime,
    ) -> None:
        conn = self.connections.get(link.connection)
        if conn is None:
            return
        for m in snap.metrics:
            for crossing in m.crossings:
                if crossing.percent == 100:
                    continue  # the breach flag below says it
                kind = "at_risk" if crossing.percent < 100 else "overdue"
                if sla_store.record_flag(
                    c,
                    link.id,
                    metric=m.metric.value,
                    kind=kind,
                    level=crossing.percent,
                    episode=crossing.episode,
                    occurred_at=crossing.at,
                    now=now,
                ):
                    self._at_risk(
                        c, conn, link, contract, m, crossing.percent, crossing.at, rows(), now
                    )
            for n in range(1, m.breach_count + 1):
                at = m.breached_at if n == 1 or m.due_at is None else m.due_at
                flagged = sla_store.record_flag(
                    c,
                    link.id,
                    metric=m.metric.value,
                    kind="breach",
                    level=100,
                    episode=n,
                    occurred_at=at or now,
                    now=now,
                )
                if flagged:
                    self._breach(c, conn, link, contract, m, n, at or now, rows(), now)

    def _vendor_label(self, link: LinkRow) -> str:
        name = self.config.display_name(link.vendor_system)
        return f"{name} {link.vendor_number or link.vendor_ticket_id}"

    def _at_risk(
        self,
        c: Connection,
        conn: ConnectionConfig,
        link: LinkRow,
        contract: ContractConfig,
        m: MetricSnapshot,
        percent: int,
        at: datetime,
        rows: Sequence[EventRow],
        now: datetime,
    ) -> None:
        label = _LABELS[m.metric.value]
        basis = "business" if m.business else "calendar"
        self.metrics.sla_flags.labels(
            "at_risk" if percent < 100 else "overdue", m.metric.value
        ).inc()
        repo.add_event(
            c,
            "sla_at_risk",
            now=now,
            link_id=link.id,
            connection=conn.name,
            system=link.vendor_system,
            ticket_id=link.vendor_ticket_id,
            metric=m.metric.value,
            percent=percent,
            contract=contract.name,
        )
        log.warning(
            "sla_at_risk",
            connection=conn.name,
            link_id=link.id,
            vendor_ticket=link.vendor_number,
            metric=m.metric.value,
            percent=percent,
        )
        if conn.sla.note_at_risk and not _history(link, at):
            action, _ = last_vendor_action(rows, now)
            text = (
                f"Supplier SLA at risk: {self._vendor_label(link)} has used {percent}% of "
                f"its {label} target ({format_duration(m.target)} {basis} time, contract "
                f"'{contract.name}', priority {link.vendor_priority}). Remaining: "
                f"{format_duration(m.remaining)}. Vendor's last action: {action}."
            )
            self._note(c, link, f"sla:{m.metric.value}:risk:{percent}:{m.episode}", text, now)

    def _breach(
        self,
        c: Connection,
        conn: ConnectionConfig,
        link: LinkRow,
        contract: ContractConfig,
        m: MetricSnapshot,
        n: int,
        at: datetime,
        rows: Sequence[EventRow],
        now: datetime,
    ) -> None:
        label = _LABELS[m.metric.value]
        basis = "business" if m.business else "calendar"
        action, action_at = last_vendor_action(rows, now)
        elapsed = m.elapsed if m.target is None else max(m.elapsed, m.target)
        investigation = sla_store.open_investigation(
            c,
            link_id=link.id,
            connection=conn.name,
            vendor_system=link.vendor_system,
            vendor_ticket=link.vendor_number,
            contract=contract.name,
            priority=link.vendor_priority,
            metric=m.metric.value,
            episode=n,
            target_seconds=m.target.total_seconds() if m.target else None,
            elapsed_seconds=elapsed.total_seconds(),
            business=m.business,
            breached_at=at,
            vendor_last_action=action,
            vendor_last_action_at=action_at,
            state="open",
            opened_at=now,
        )
        self.metrics.sla_flags.labels("breach", m.metric.value).inc()
        repo.add_event(
            c,
            "sla_breached",
            now=now,
            link_id=link.id,
            connection=conn.name,
            system=link.vendor_system,
            ticket_id=link.vendor_ticket_id,
            occurred_at=at,
            metric=m.metric.value,
            contract=contract.name,
            investigation=investigation,
            elapsed_seconds=elapsed.total_seconds(),
        )
        log.warning(
            "sla_breached",
            connection=conn.name,
            link_id=link.id,
            vendor_ticket=link.vendor_number,
            metric=m.metric.value,
            contract=contract.name,
            investigation=investigation,
        )
        if _history(link, at):
            return  # flagged and investigated; the PSA heard of it before the link was made
        if conn.sla.note_on_breach:
            text = (
                f"Supplier SLA BREACHED: {self._vendor_label(link)} missed its {label} "
                f"target of {format_duration(m.target)} ({basis} time, contract "
                f"'{contract.name}', priority {link.vendor_priority}) at "
                f"{at:%Y-%m-%d %H:%M} UTC. Elapsed vendor time: "
                f"{format_duration(elapsed)}. Vendor's last action: {action}. "
                f"Breach investigation #{investigation} opened."
            )
            self._note(c, link, f"sla:{m.metric.value}:breach:{n}", text, now)
        flag = outbox.UpdateTicket.of(
            status=conn.sla.breach_psa_status or None,
            fields=dict(conn.sla.breach_psa_fields or {}),
        )
        if not flag.change.is_empty():
            self._enqueue(
                c,
                link_id=link.id,
                target_system=link.psa_system,
                operation=flag.op,
                key=idempotency_key(
                    *_identity(link), link.psa_system, "sla-status", m.metric.value, str(n)
                ),
                payload=flag.to_json(),
                now=now,
            )

    def _note(self, c: Connection, link: LinkRow, why: str, text: str, now: datetime) -> None:
        key = idempotency_key(*_identity(link), link.psa_system, "sla-note", why)
        note = outbox.AddNote(text, Visibility.INTERNAL)
        self._enqueue(
            c,
            link_id=link.id,
            target_system=link.psa_system,
            operation=note.op,
            key=key,
            now=now,
            payload=note.to_json(),
            uncertain=True,  # a fresh or restored store may not know it was written
        )
