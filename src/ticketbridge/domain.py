"""Canonical, product-neutral data that flows between adapters and the engine.

Plain frozen dataclasses: adapters translate product JSON into these and back;
the engine never sees a product's JSON.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "MARKER_RE",
    "Contact",
    "FieldChange",
    "Note",
    "NoteDraft",
    "Side",
    "Ticket",
    "TicketChange",
    "TicketDraft",
    "TicketRef",
    "Visibility",
    "WebhookHint",
    "WebhookRequest",
    "idempotency_key",
    "marker_for",
]


class Side(StrEnum):
    PSA = "psa"
    VENDOR = "vendor"


class Visibility(StrEnum):
    """Who may see a note.  ``UNKNOWN`` is always treated as ``INTERNAL``."""

    PUBLIC = "public"
    INTERNAL = "internal"
    UNKNOWN = "unknown"

    @property
    def is_public(self) -> bool:
        return self is Visibility.PUBLIC


@dataclass(frozen=True, slots=True)
class TicketRef:
    """A ticket in one system: ``id`` is the API id, ``number`` what people see."""

    system: str
    id: str
    number: str | None = None

    @property
    def label(self) -> str:
        return self.number or self.id


@dataclass(frozen=True, slots=True)
class Contact:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    ref: TicketRef
    summary: str
    description: str = ""
    status: str | None = None
    priority: str | None = None
    company: str | None = None
    company_name: str | None = None
    contact: Contact | None = None
    board: str | None = None
    type: str | None = None
    team: str | None = None
    assignee: str | None = None
    link_value: str | None = None
    closed: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Note:
    """A note, comment or journal entry on a ticket."""

    system: str
    ticket_id: str
    id: str
    text: str
    visibility: Visibility
    created_at: datetime
    author: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class TicketChange:
    """A ticket seen changed by polling: ``updated_at`` comes from the source system."""

    ticket_id: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """A ticket to open at a target system."""

    summary: str
    description: str
    priority: str | None = None
    account: Mapping[str, str] = field(default_factory=dict)
    contact: Contact | None = None
    company_name: str | None = None
    external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class NoteDraft:
    text: str
    visibility: Visibility


@dataclass(frozen=True, slots=True)
class FieldChange:
    """Fields to set on a ticket; ``None`` means leave alone.

    ``board`` and ``owner`` move a PSA ticket (a tier escalation); ``fields``
    sets product fields by name (e.g. ServiceNow's ``escalation``), which each
    adapter validates.
    """

    status: str | None = None
    priority: str | None = None
    link_value: str | None = None
    board: str | None = None
    owner: str | None = None
    team: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return (
            self.status is None
            and self.priority is None
            and self.link_value is None
            and self.board is None
            and self.owner is None
            and self.team is None
            and not self.fields
        )


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """What arrived at ``/webhooks/{system}``: header names are lower-case."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookHint:
    """A verified webhook's meaning: this ticket may have changed."""

    ticket_id: str
    delivery_key: str


def idempotency_key(*parts: str) -> str:
    """A short, deterministic key for a write: same inputs, same key."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:16]


MARKER_RE = re.compile(r"\[tb:([0-9a-f]{16})\]")


def marker_for(key: str) -> str:
    """The marker embedded in every note ticketbridge writes, for look-up and echo checks."""
    return f"[tb:{key}]"
