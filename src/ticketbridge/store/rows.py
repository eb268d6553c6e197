"""Typed rows: what repository functions return instead of SQLAlchemy ``Row`` objects.

Each class has one field per column of its table, with the same name, so code that
read ``row.column`` keeps reading it; rows are frozen (change them through the store).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

__all__ = [
    "ClockRow",
    "EventRow",
    "InboxRow",
    "LedgerRow",
    "LinkRow",
    "OutboxRow",
    "ReportLinkRow",
    "RuleStateRow",
    "from_row",
]

T = TypeVar("T")


def from_row(cls: type[T], row: Any) -> T:
    """Build ``cls`` from a result row (or mapping), taking the columns it declares."""
    mapping: Mapping[str, Any] = row if isinstance(row, Mapping) else row._mapping
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: mapping[name] for name in names})


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One PSA ticket <-> one vendor ticket inside a connection (table ``links``)."""

    id: int
    connection: str
    psa_system: str
    psa_ticket_id: str
    psa_number: str | None
    vendor_system: str
    vendor_ticket_id: str | None
    vendor_number: str | None
    state: str
    origin: str
    company: str | None
    psa_status: str | None
    vendor_status: str | None
    psa_priority: str | None
    vendor_priority: str | None
    psa_status_written: str | None
    vendor_status_written: str | None
    vendor_assignee: str | None
    psa_snapshot: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A note seen on a linked ticket and what became of it (table ``note_ledger``)."""

    id: int
    link_id: int
    source_system: str
    source_note_id: str
    source_created_at: datetime
    target_system: str
    target_note_id: str | None
    key: str
    state: str
    reason: str | None
    created_at: datetime
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A write still to be made (table ``outbox``)."""

    id: int
    link_id: int
    target_system: str
    operation: str
    key: str
    payload: dict[str, Any]
    state: str
    attempts: int
    uncertain: bool
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None
    source_at: datetime | None
    created_at: datetime
    done_at: datetime | None
    claim_token: str | None = None
    deadline_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A verified webhook delivery: a hint to re-read a ticket (table ``webhook_inbox``)."""

    id: int
    system: str
    delivery_key: str
    ticket_id: str
    state: str
    attempts: int
    received_at: datetime
    processed_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One entry of a link's history (table ``audit_events``)."""

    id: int
    link_id: int | None
    connection: str | None
    system: str | None
    ticket_id: str | None
    kind: str
    detail: dict[str, Any]
    occurred_at: datetime | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ClockRow:
    """A link's supplier SLA checkpoint (table ``sla_clocks``)."""

    link_id: int
    contract: str
    priority: str | None
    policy_key: str
    state: dict[str, Any]
    next_wakeup: datetime | None
    breached: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RuleStateRow:
    """A link's escalation-rule progress and its durable timer (table ``rule_states``)."""

    link_id: int
    state: dict[str, Any]
    next_due_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReportLinkRow:
    """A link with its SLA checkpoint, as the scorecard reads it."""

    id: int
    vendor_system: str
    company: str | None
    clock_state: dict[str, Any]
    clock_priority: str | None
