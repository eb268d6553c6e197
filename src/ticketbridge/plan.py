"""A plan: everything one decision about a ticket writes, as plain data.

Deciding builds a :class:`Plan` without touching the store; the store applies it in
the caller's transaction (:func:`ticketbridge.store.plan.apply_plan`).  The parts keep
the order in which they were decided, so rows get their ids in that order (outbox rows
are sent oldest first per link and target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticketbridge.operations import Operation

__all__ = [
    "Event",
    "Hint",
    "LedgerEntry",
    "LinkUpdate",
    "NewLink",
    "NoteCount",
    "OutboxEntry",
    "Plan",
]


@dataclass(frozen=True, slots=True)
class NewLink:
    """A link to store: inserted, or (``upgrade``: the id of the link that only watched
    the ticket) written over that link, which keeps its id and history."""

    values: Mapping[str, Any]
    upgrade: int | None = None


@dataclass(frozen=True, slots=True)
class LinkUpdate:
    """Columns of an existing link to change (``updated_at`` included)."""

    link_id: int
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A note seen on a linked ticket and what became of it (a ``note_ledger`` row)."""

    link_id: int
    source_system: str
    source_note_id: str
    source_created_at: datetime
    target_system: str
    key: str
    state: str
    created_at: datetime
    reason: str | None = None
    #: The note's copy already on the other side (a note found mirrored there before this
    #: store knew of it): recorded done, never written again.
    target_note_id: str | None = None

    def values(self) -> dict[str, Any]:
        """The row's columns, as the store inserts them."""
        return {
            "target_note_id": self.target_note_id,
            "done_at": self.created_at if self.target_note_id is not None else None,
            "link_id": self.link_id,
            "source_system": self.source_system,
            "source_note_id": self.source_note_id,
            "source_created_at": self.source_created_at,
            "target_system": self.target_system,
            "key": self.key,
            "created_at": self.created_at,
            "state": self.state,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A write to queue under its idempotency key (an ``outbox`` row).

    ``lookup``: the target may already hold this write (a link re-established on a fresh
    or restored store): the dispatcher looks it up before writing, and adopts it if found.
    """

    link_id: int
    target_system: str
    operation: Operation
    key: str
    now: datetime
    source_at: datetime | None = None
    lookup: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a link's history (an ``audit_events`` row)."""

    kind: str
    now: datetime
    link_id: int | None
    connection: str | None
    system: str | None
    ticket_id: str | None
    occurred_at: datetime | None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hint:
    """A local hint: re-read a ticket on the worker's next pass."""

    system: str
    delivery_key: str
    ticket_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class NoteCount:
    """A note decided in ``direction`` with ``outcome`` (``mirrored`` or ``withheld``)."""

    direction: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What one decision writes; empty parts write nothing."""

    link_updates: tuple[LinkUpdate, ...] = ()
    ledger: tuple[LedgerEntry, ...] = ()
    outbox: tuple[OutboxEntry, ...] = ()
    events: tuple[Event, ...] = ()
    hints: tuple[Hint, ...] = ()
    notes: tuple[NoteCount, ...] = ()

    def __add__(self, other: Plan) -> Plan:
        """Both plans, this one's parts first."""
        return Plan(
            link_updates=self.link_updates + other.link_updates,
            ledger=self.ledger + other.ledger,
            outbox=self.outbox + other.outbox,
            events=self.events + other.events,
            hints=self.hints + other.hints,
            notes=self.notes + other.notes,
        )

    @property
    def empty(self) -> bool:
        """True when applying it writes nothing."""
        return not (self.link_updates or self.ledger or self.outbox or self.events or self.hints)

    def changes(self, link_id: int) -> dict[str, Any]:
        """Every column change the plan makes to one link, later ones winning."""
        out: dict[str, Any] = {}
        for update in self.link_updates:
            if update.link_id == link_id:
                out.update(update.values)
        return out
