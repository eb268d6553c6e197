"""An in-memory adapter: for tests, and for trying rules without touching real systems.

It behaves like a well-mannered API: second-resolution timestamps, notes that
bump their ticket's ``updated_at``, idempotency look-ups by marker.  Failures
can be scripted with :meth:`FakeAdapter.fail_next`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from ticketbridge.adapters.base import (
    AdapterContext,
    AdapterSettings,
    Capability,
    TicketAdapter,
)
from ticketbridge.adapters.fake import defaults
from ticketbridge.adapters.kit.http import HttpClient
from ticketbridge.clock import utcnow
from ticketbridge.domain import (
    FieldChange,
    Note,
    NoteDraft,
    Side,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketRef,
    Visibility,
    marker_for,
)
from ticketbridge.errors import NotFoundError

__all__ = ["FakeAdapter", "FakeSettings", "FakeWorld"]


class FakeSettings(AdapterSettings):
    sides: list[Side] = [Side.PSA, Side.VENDOR]


@dataclass
class FakeWorld:
    """The state behind one fake system."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    notes: dict[str, list[Note]] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, BaseException, bool]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def next_id(self) -> str:
        return str(next(self._ids))

    def add_ticket(self, system: str, summary: str, **fields: Any) -> Ticket:
        tid = self.next_id()
        now = self.now()
        ticket = Ticket(
            ref=TicketRef(system, tid, str(fields.pop("number", tid))),
            summary=summary,
            created_at=now,
            updated_at=now,
            **fields,
        )
        self.tickets[tid] = ticket
        self.notes[tid] = []
        return ticket

    def change(self, ticket_id: str, **fields: Any) -> Ticket:
        ticket = replace(self.tickets[ticket_id], updated_at=self.now(), **fields)
        self.tickets[ticket_id] = ticket
        return ticket

    def add_note(
        self,
        system: str,
        ticket_id: str,
        text: str,
        visibility: Visibility,
        author: str | None = None,
    ) -> Note:
        note = Note(
            system=system,
            ticket_id=ticket_id,
            id=self.next_id(),
            text=text,
            visibility=visibility,
            created_at=self.now(),
            author=author,
        )
        self.notes[ticket_id].append(note)
        self.change(ticket_id)
        return note


class FakeAdapter(TicketAdapter):
    kind = "fake"
    display_name = "Fake"
    sides = frozenset({Side.PSA, Side.VENDOR})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CREATE_TICKET,
            Capability.ADD_NOTE,
            Capability.SET_STATUS,
            Capability.SET_PRIORITY,
            Capability.SET_FIELDS,
            Capability.ASSIGN,
            Capability.FIND_BY_NUMBER,
        }
    )
    settings_model = FakeSettings
    status_classes = defaults.STATUS_CLASSES
    priority_ranks = defaults.PRIORITY_RANKS
    field_aliases = defaults.FIELD_ALIASES

    def __init__(
        self, ctx: AdapterContext, settings: AdapterSettings, world: FakeWorld | None = None
    ) -> None:
        super().__init__(ctx, settings)
        self.world = world or FakeWorld()

    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        return HttpClient(system=ctx.name, base_url=ctx.base_url, transport=ctx.transport)

    def fail_next(self, operation: str, exc: BaseException, *, after_apply: bool = False) -> None:
        """Make the next call of ``operation`` raise ``exc`` (after doing it, if asked)."""
        self.world.failures.append((operation, exc, after_apply))

    def _enter(self, operation: str, ref: str = "") -> bool:
        self.world.calls.append((operation, ref))
        for i, (op, exc, after) in enumerate(self.world.failures):
            if op == operation:
                if after:
                    return True
                del self.world.failures[i]
                raise exc
        return False

    def _leave(self, operation: str) -> None:
        for i, (op, exc, after) in enumerate(self.world.failures):
            if op == operation and after:
                del self.world.failures[i]
                raise exc

    async def check(self) -> None:
        self._enter("check")

    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        self._enter("changed_tickets")
        out = [
            TicketChange(t.ref.id, t.updated_at)
            for t in self.world.tickets.values()
            if t.updated_at is not None and (since is None or t.updated_at >= since)
        ]
        return sorted(out, key=lambda c: (c.updated_at, int(c.ticket_id)))

    async def get_ticket(self, ticket_id: str) -> Ticket:
        self._enter("get_ticket", ticket_id)
        if ticket_id not in self.world.tickets:
            raise NotFoundError(f"no ticket {ticket_id}", system=self.name, status=404)
        return self._classified(self.world.tickets[ticket_id])

    def _classified(self, ticket: Ticket) -> Ticket:
        """The ticket with its status class and priority rank by the merged maps."""
        return replace(
            ticket,
            status_class=self.status_class_of(ticket.status) or ticket.status_class,
            priority_rank=self.priority_rank_of(ticket.priority) or ticket.priority_rank,
        )

    async def find_ticket(self, number: str) -> Ticket | None:
        self._enter("find_ticket", number)
        for ticket in self.world.tickets.values():
            if ticket.ref.number == number:
                return self._classified(ticket)
        return None

    async def list_notes(self, ticket_id: str) -> list[Note]:
        self._enter("list_notes", ticket_id)
        return list(self.world.notes.get(ticket_id, []))

    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef:
        self._enter("create_ticket", key)
        ticket = self.world.add_ticket(
            self.name,
            draft.summary,
            description=draft.description,
            priority=draft.priority,
            status="New",
            fields={"correlation_id": key},
            number=f"V{len(self.world.tickets) + 1:05d}",
        )
        self._leave("create_ticket")
        return ticket.ref

    async def find_created(self, key: str) -> TicketRef | None:
        self._enter("find_created", key)
        for ticket in self.world.tickets.values():
            if ticket.fields.get("correlation_id") == key:
                return ticket.ref
        return None

    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        self._enter("add_note", ticket_id)
        if ticket_id not in self.world.tickets:
            raise NotFoundError(f"no ticket {ticket_id}", system=self.name, status=404)
        text = note.text if marker_for(key) in note.text else f"{note.text}\n{marker_for(key)}"
        created = self.world.add_note(
            self.name, ticket_id, text, note.visibility, author="ticketbridge"
        )
        self._leave("add_note")
        return created.id

    async def find_note(self, ticket_id: str, key: str) -> str | None:
        self._enter("find_note", ticket_id)
        for note in self.world.notes.get(ticket_id, []):
            if marker_for(key) in note.text:
                return note.id
        return None

    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        self._enter("update_ticket", ticket_id)
        ticket = self.world.tickets[ticket_id]
        fields: dict[str, object] = {}
        if change.status is not None and change.status != ticket.status:
            fields["status"] = change.status
        if change.priority is not None and change.priority != ticket.priority:
            fields["priority"] = change.priority
        if change.external_ref is not None and change.external_ref != ticket.external_ref:
            fields["external_ref"] = change.external_ref
        if change.queue is not None and change.queue != ticket.queue:
            fields["queue"] = change.queue
        if change.assignee is not None and change.assignee != ticket.assignee:
            fields["assignee"] = change.assignee
        if change.group is not None and change.group != ticket.group:
            fields["group"] = change.group
        if change.fields:
            merged = dict(ticket.fields)
            merged.update(change.fields)
            if merged != dict(ticket.fields):
                fields["fields"] = merged
        if fields:
            self.world.change(ticket_id, **fields)
        self._leave("update_ticket")
