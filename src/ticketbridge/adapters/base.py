"""The seam between the engine and one product's API.

An adapter is a pure translator: it knows one product's REST API and the
canonical types in :mod:`ticketbridge.domain`, and nothing of links, rules,
SLAs or the store.  The engine knows no product.  Third parties can ship an
adapter as a package registering an entry point in the group
``ticketbridge.adapters``.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict

from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import HttpClient, RetrySettings
from ticketbridge.domain import (
    FieldChange,
    Note,
    NoteDraft,
    Side,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketRef,
    WebhookHint,
    WebhookRequest,
)

__all__ = ["AdapterContext", "AdapterSettings", "Capability", "TicketAdapter"]


class Capability(StrEnum):
    """What a product can do through ticketbridge, declared by each adapter as data."""

    #: Pushes change notifications that :meth:`TicketAdapter.webhook_hints` verifies.
    WEBHOOKS = "webhooks"
    #: Opens tickets (the vendor side of a connection).
    CREATE_TICKET = "create_ticket"
    #: Adds notes (public and internal).
    ADD_NOTE = "add_note"
    SET_STATUS = "set_status"
    SET_PRIORITY = "set_priority"
    #: Sets product fields by name (custom fields, escalation flags).
    SET_FIELDS = "set_fields"
    #: Moves a ticket between queues, groups and assignees (tier escalation).
    ASSIGN = "assign"
    #: Completes or cancels a ticket with a closing note.
    CLOSE = "close"
    #: Finds a ticket by the number people see (links made by hand).
    FIND_BY_NUMBER = "find_by_number"
    ATTACHMENTS = "attachments"


#: Operations that exist only for one capability: an adapter that does not declare the
#: capability has the operation replaced by a refusal (:class:`CapabilityError`).
GUARDED_OPERATIONS: Mapping[Capability, str] = {
    Capability.CREATE_TICKET: "create_ticket",
    Capability.ADD_NOTE: "add_note",
    Capability.FIND_BY_NUMBER: "find_ticket",
}


def _refusal(capability: Capability, operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    async def refuse(self: TicketAdapter, *args: Any, **kwargs: Any) -> Any:
        from ticketbridge.errors import CapabilityError

        raise CapabilityError(
            f"{self.display_name} does not declare the capability {capability.value!r}: "
            f"ticketbridge cannot {operation.__name__.replace('_', ' ')} there",
            system=self.name,
        )

    return refuse


#: Which capability each :class:`FieldChange` attribute needs.
CHANGE_CAPABILITIES: Mapping[str, Capability] = {
    "status": Capability.SET_STATUS,
    "priority": Capability.SET_PRIORITY,
    "link_value": Capability.SET_FIELDS,
    "fields": Capability.SET_FIELDS,
    "board": Capability.ASSIGN,
    "owner": Capability.ASSIGN,
    "team": Capability.ASSIGN,
}


def _needed(change: FieldChange) -> set[Capability]:
    return {cap for name, cap in CHANGE_CAPABILITIES.items() if getattr(change, name)}


def _guarded_update(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    async def update(self: TicketAdapter, ticket_id: str, change: FieldChange) -> None:
        missing = _needed(change) - self.capabilities
        if missing:
            from ticketbridge.errors import CapabilityError

            names = ", ".join(sorted(cap.value for cap in missing))
            raise CapabilityError(
                f"{self.display_name} does not declare the capability {names}: "
                "ticketbridge cannot change those fields there",
                system=self.name,
            )
        await operation(self, ticket_id, change)

    return update


class AdapterSettings(BaseModel):
    """Base of every adapter's own settings model (``systems.<name>.settings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class AdapterContext:
    """What the daemon hands an adapter at construction.  No I/O happens there."""

    name: str
    base_url: str
    timeout: float = 20.0
    retry: RetrySettings = field(default_factory=RetrySettings)
    transport: httpx.AsyncBaseTransport | None = None
    webhook_transport: httpx.AsyncBaseTransport | None = None
    #: The request budget shared by every call to this system (``None``: unpaced).
    budget: RequestBudget | None = None


class TicketAdapter(abc.ABC):
    """One product's API, translated to canonical tickets and notes."""

    kind: ClassVar[str]
    display_name: ClassVar[str]
    sides: ClassVar[frozenset[Side]]
    settings_model: ClassVar[type[AdapterSettings]]
    #: What this product can do; anything else is refused (see :class:`Capability`).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: ``module:factory`` of this product's simulator app (its folder's ``simulator.py``).
    simulator: ClassVar[str | None] = None
    #: ``module:Class`` of this product's :class:`~ticketbridge.sandbox.driver.SimulatorDriver`
    #: (what the contract suite plays the product's people with).
    driver: ClassVar[str | None] = None
    #: Every status the product knows, when the set is fixed by the product
    #: (``None`` when statuses are configured per instance, as PSA boards are).
    known_statuses: ClassVar[tuple[str, ...] | None] = None
    #: Every priority value the product knows, when fixed by the product.
    known_priorities: ClassVar[tuple[str, ...] | None] = None
    #: Statuses that mean the product's agent is working the ticket (acknowledgment by
    #: "in_progress" in supplier SLA contracts).
    working_statuses: ClassVar[tuple[str, ...]] = ()
    #: Statuses that mean "resolved" at this product (for the engine's status logic).
    resolved_statuses: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Replace every guarded operation whose capability the product does not declare."""
        super().__init_subclass__(**kwargs)
        for capability, name in GUARDED_OPERATIONS.items():
            if capability not in cls.capabilities and name in cls.__dict__:
                setattr(cls, name, _refusal(capability, cls.__dict__[name]))
        if "update_ticket" in cls.__dict__ and not set(CHANGE_CAPABILITIES.values()).issubset(
            cls.capabilities
        ):
            cls.update_ticket = _guarded_update(cls.__dict__["update_ticket"])  # type: ignore[method-assign]

    def __init__(self, ctx: AdapterContext, settings: AdapterSettings) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.settings = settings
        self.http = self._make_http(ctx)
        if self.http.budget is None:
            self.http.budget = ctx.budget

    # -- construction -------------------------------------------------------
    @abc.abstractmethod
    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        """Build the shared HTTP client with this product's auth and headers."""

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- reads ----------------------------------------------------------------
    @abc.abstractmethod
    async def check(self) -> None:
        """Reach the API with our credentials; raise an AdapterError if that fails."""

    @abc.abstractmethod
    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        """Every ticket updated at or after ``since`` (all pages), oldest first.

        ``since`` is inclusive and comes from the source's own timestamps.
        """

    @abc.abstractmethod
    async def get_ticket(self, ticket_id: str) -> Ticket: ...

    @abc.abstractmethod
    async def find_ticket(self, number: str) -> Ticket | None:
        """Look a ticket up by the number people see (for links made by hand)."""

    @abc.abstractmethod
    async def list_notes(self, ticket_id: str) -> list[Note]:
        """Every note of the ticket, oldest first."""

    # -- writes (each idempotent, keyed) ------------------------------------
    @abc.abstractmethod
    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef: ...

    @abc.abstractmethod
    async def find_created(self, key: str) -> TicketRef | None:
        """The ticket an earlier ``create_ticket`` with ``key`` made, if any."""

    @abc.abstractmethod
    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        """Add a note carrying ``marker_for(key)`` in its text; return its id if known."""

    @abc.abstractmethod
    async def find_note(self, ticket_id: str, key: str) -> str | None:
        """The id of the note an earlier ``add_note`` with ``key`` wrote, if any."""

    @abc.abstractmethod
    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        """Set fields; setting a value the ticket already has is a no-op."""

    # -- webhooks -------------------------------------------------------------
    async def webhook_hints(self, request: WebhookRequest) -> list[WebhookHint]:
        """Verify a webhook and say which tickets it hints at.

        Raises ``WebhookAuthError`` or ``WebhookPayloadError``.  Products
        without webhooks keep this default, which refuses every request.
        """
        from ticketbridge.errors import WebhookAuthError

        raise WebhookAuthError(f"{self.kind} does not take webhooks")

    # -- helpers ----------------------------------------------------------------
    def describe(self) -> Mapping[str, Any]:
        return {"adapter": self.kind, "system": self.name, "base_url": self.ctx.base_url}
