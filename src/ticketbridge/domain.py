"""Canonical, product-neutral data that flows between adapters and the engine.

Plain frozen dataclasses: adapters translate product JSON into these and back;
the engine never sees a product's JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "MARKER_RE",
    "ChangeBatch",
    "Contact",
    "FieldChange",
    "Note",
    "NoteDraft",
    "Side",
    "StatusClass",
    "Ticket",
    "TicketChange",
    "TicketDraft",
    "TicketRef",
    "Unmatched",
    "Visibility",
    "WebhookHint",
    "WebhookRequest",
    "body_hash",
    "idempotency_key",
    "marker_for",
    "marker_is_ours",
    "note_key",
    "note_order",
    "with_aliases",
]


class Side(StrEnum):
    PSA = "psa"
    VENDOR = "vendor"


class StatusClass(StrEnum):
    """What a status means, whatever the product calls it.

    Each adapter declares how its product's statuses map to these classes (and
    the configuration may override that per system); the engine, routing, rules
    and supplier SLAs reason only about classes.
    """

    NEW = "new"
    WORKING = "working"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    WAITING_ON_THIRD_PARTY = "waiting_on_third_party"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def is_done(self) -> bool:
        """Resolved, closed or cancelled: nobody is working the ticket any more."""
        return self in _DONE_CLASSES


_DONE_CLASSES = frozenset({StatusClass.RESOLVED, StatusClass.CLOSED, StatusClass.CANCELLED})


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
    """A ticket as read from one system, in neutral fields.

    ``queue`` is where the ticket waits to be worked (whatever the product
    calls it), ``group`` the team it is assigned to and ``assignee`` the
    person.  ``priority_rank`` orders priorities across products (1 is the most
    urgent).  ``status_class`` says what ``status`` means (see
    :class:`StatusClass`).  ``external_ref`` is the other side's ticket number
    as recorded on this ticket, if the product has a place for it.
    ``updated_by`` is who changed the ticket last, as the product names them (when it
    says): the engineer who typed a vendor's case number, for instance.
    ``fields`` holds the product's own raw fields, for templates and for the
    adapter's own use.  ``partial`` marks a ticket taken from a listing or a verified
    webhook payload rather than read on its own: fields the product leaves out of
    those (a description, say) may be empty, so whoever needs them reads
    the ticket.
    """

    ref: TicketRef
    summary: str
    description: str = ""
    status: str | None = None
    status_class: StatusClass = StatusClass.NEW
    priority: str | None = None
    priority_rank: int | None = None
    company: str | None = None
    company_name: str | None = None
    contact: Contact | None = None
    queue: str | None = None
    type: str | None = None
    subtype: str | None = None
    group: str | None = None
    assignee: str | None = None
    external_ref: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    partial: bool = False

    @property
    def closed(self) -> bool:
        """Resolved, closed or cancelled (derived from :attr:`status_class`)."""
        return self.status_class.is_done


@dataclass(frozen=True, slots=True)
class Note:
    """A note, comment or journal entry on a ticket.

    ``sequence`` is the source's own order among notes of the same ``created_at``
    (timestamps often have one-second precision): the product's ascending note
    number where it has one, else the note's position in the product's listing.
    Ids are identities, never an order (some products' ids are random).
    """

    system: str
    ticket_id: str
    id: str
    text: str
    visibility: Visibility
    created_at: datetime
    author: str | None = None
    kind: str | None = None
    sequence: int = 0
    #: Written by the identity the adapter authenticates as (the integration user).
    by_us: bool = False


def note_order(note: Note) -> tuple[datetime, int]:
    """Sort key putting notes in source order: the source's time, then its sequence.

    Sort with a stable sort, so notes the source cannot tell apart keep the order
    they were listed in.
    """
    return (note.created_at, note.sequence)


@dataclass(frozen=True, slots=True)
class TicketChange:
    """A ticket seen changed by polling: ``updated_at`` comes from the source system.

    ``ticket`` is the ticket as the listing showed it, when the adapter can build one
    from the listing's record (then it need not be read again).  ``own_write``: the
    listing shows the very version our own latest write left the ticket at, so nothing
    else changed and there is nothing to read.  ``version``: the record's own change
    counter where the product keeps one (it tells apart two changes made within one tick
    of ``updated_at``'s clock, which show the same time).
    """

    ticket_id: str
    updated_at: datetime
    ticket: Ticket | None = field(default=None, compare=False)
    own_write: bool = field(default=False, compare=False)
    version: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """One poll's read of changed tickets, oldest first in the source's listing order.

    ``complete`` is False when the read stopped at its page limit: more changes follow
    the last one, and the next read continues after it (see
    ``TicketAdapter.changes_after``).
    """

    changes: tuple[TicketChange, ...]
    complete: bool = True


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

    ``queue``, ``group`` and ``assignee`` move a ticket (a tier escalation);
    ``external_ref`` records the other side's ticket number; ``fields`` sets
    product fields by name, which each adapter validates.
    """

    status: str | None = None
    priority: str | None = None
    external_ref: str | None = None
    queue: str | None = None
    group: str | None = None
    assignee: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return (
            self.status is None
            and self.priority is None
            and self.external_ref is None
            and self.queue is None
            and self.group is None
            and self.assignee is None
            and not self.fields
        )


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """What arrived at ``/webhooks/{system}``: header names are lower-case."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Unmatched:
    """Something at a vendor that no link holds yet and a person should look at: a case the
    vendor opened itself (a mail to our mailbox about a case we did not open, say).

    ``ticket_id`` is the vendor ticket a link would hold; ``reference`` is what an engineer
    types into the PSA ticket's vendor-reference field to link it (its case number, else
    ``ticket_id``)."""

    ticket_id: str
    reference: str
    item_id: str  # what the vendor system calls the item (a Message-ID, say)
    sender: str
    subject: str
    at: datetime
    snippet: str


@dataclass(frozen=True, slots=True)
class WebhookHint:
    """A verified webhook's meaning: this ticket may have changed.

    ``ticket`` is the ticket as the webhook's verified payload shows it, when the
    product signs a payload that carries the record (then it need not be read again).
    """

    ticket_id: str
    delivery_key: str
    ticket: Ticket | None = field(default=None, compare=False)


def idempotency_key(*parts: str) -> str:
    """A short, deterministic key for a write: same inputs, same key.

    Keys are built from the systems' own identities (source system, source ticket,
    source note or event, target system, operation), never from a local row id, so a
    fresh or restored store derives the same key for the same write.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:16]


def note_key(source_system: str, source_ticket: str, note_id: str, target_system: str) -> str:
    """The key of the mirror of one note on the other system."""
    return idempotency_key(source_system, source_ticket, note_id, target_system, "add_note")


#: A marker as ticketbridge writes it when a system opts in to visible markers: the write's
#: key and a MAC over (system, ticket, key) with the installation's secret.  The shape
#: alone proves nothing; only :func:`marker_is_ours` does.
MARKER_RE = re.compile(r"\[tb:([0-9a-f]{16})\.([0-9a-f]{16})\]")


def _mac(secret: str, system: str, ticket_id: str, key: str) -> str:
    message = f"{system}\x1f{ticket_id}\x1f{key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:16]


def marker_for(key: str, secret: str, system: str, ticket_id: str) -> str:
    """The visible marker of the write ``key`` on ``system``'s ticket ``ticket_id``."""
    return f"[tb:{key}.{_mac(secret, system, ticket_id, key)}]"


def marker_is_ours(text: str, secret: str, system: str, ticket_id: str) -> bool:
    """Does ``text`` carry a marker this installation wrote on this very ticket?

    A marker copied from another ticket, an old unsigned one (``[tb:0123456789abcdef]``)
    or one made without the secret is a person's text, not ours.
    """
    if not secret:
        return False
    for found in MARKER_RE.finditer(text):
        key, mac = found.groups()
        if hmac.compare_digest(mac, _mac(secret, system, ticket_id, key)):
            return True
    return False


_TAG_RE = re.compile(r"<[^>]*>")


def body_hash(text: str) -> str:
    """A hash of a note's body that survives what products do to text: HTML tags and
    entities, whitespace and line endings are normalised before hashing."""
    plain = html.unescape(_TAG_RE.sub(" ", text))
    normal = " ".join(plain.split()).casefold()
    return hashlib.sha256(normal.encode()).hexdigest()


def with_aliases(data: Any, aliases: Mapping[str, str]) -> Any:
    """``data`` with each key that is a product's word for a neutral field renamed.

    ``aliases`` maps a product's word to the neutral one (see
    ``TicketAdapter.field_aliases``).  Only the mapping's own keys are renamed,
    not nested ones; a key given both ways is left alone, for validation to
    report.  Anything but a mapping is returned as is.
    """
    if not isinstance(data, Mapping) or not aliases:
        return data
    out: dict[Any, Any] = {}
    for key, value in data.items():
        neutral = aliases.get(key) if isinstance(key, str) else None
        out[neutral if neutral is not None and neutral not in data else key] = value
    return out
