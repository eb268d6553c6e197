"""The seam between the engine and one product's API.

An adapter is a pure translator: it knows one product's REST API and the
canonical types in :mod:`ticketbridge.domain`, and nothing of links, rules,
SLAs or the store.  The engine knows no product.  Third parties can ship an
adapter as a package registering an entry point in the group
``ticketbridge.adapters``.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import HttpClient, RetrySettings
from ticketbridge.adapters.kit.paging import after_keyset
from ticketbridge.adapters.kit.settings import is_webhook_secret
from ticketbridge.clock import utcnow
from ticketbridge.domain import (
    MARKER_RE,
    ChangeBatch,
    FieldChange,
    Note,
    NoteDraft,
    Side,
    StatusClass,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketRef,
    Unmatched,
    WebhookHint,
    WebhookRequest,
    body_hash,
)
from ticketbridge.errors import CapabilityError, WebhookAuthError, WebhookCapabilityError

__all__ = [
    "AdapterContext",
    "AdapterSettings",
    "Capability",
    "ClosingTerms",
    "NameKind",
    "NameLookup",
    "TicketAdapter",
    "capabilities_for_change",
]

_V = TypeVar("_V")


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


@dataclass(frozen=True)
class ClosingTerms:
    """How a ticket is closed at this product when its client leaves (a client closeout), in
    the product's own words.

    ``complete_status`` / ``cancel_status``: the status that completes or cancels a ticket
    (``None``: the product has no status to set, as a mail thread: the closing note asks the
    vendor to close it, and its answer does).  The notes are Jinja2 templates (rendered in a
    sandbox) given ``client``, ``client_name``, ``psa_ticket``, ``vendor_ticket``,
    ``summary`` and ``msp``.  Each product folder's ``defaults.py`` holds its terms;
    ``systems.<name>.closing`` overrides any of them.
    """

    complete_note: str
    cancel_note: str
    complete_status: str | None = None
    cancel_status: str | None = None


#: What a product without terms of its own says when a client's ticket is closed out.
DEFAULT_CLOSING_TERMS = ClosingTerms(
    complete_note=(
        "{{ client_name }} has ended its service with {{ msp }}. The issue in ticket "
        "{{ vendor_ticket }} is resolved on our side: please close it. Thank you."
    ),
    cancel_note=(
        "{{ client_name }} has ended its service with {{ msp }}, so we withdraw this "
        "request: please cancel ticket {{ vendor_ticket }}. No further work is needed."
    ),
)


class NameKind(StrEnum):
    """The kinds of names configuration and rules write that must exist in a product."""

    QUEUE = "queue"
    STATUS = "status"
    PRIORITY = "priority"
    #: A team or group tickets are assigned to.
    GROUP = "group"
    #: A person tickets are assigned to.
    ASSIGNEE = "assignee"
    #: A ticket field set by name (custom fields, account fields).
    FIELD = "field"
    #: A client company (account) by its identifier.
    ACCOUNT = "account"


@dataclass(frozen=True)
class NameLookup:
    """What a product answered for the names of one kind (see :meth:`TicketAdapter.lookup_names`).

    ``known`` is every name of that kind the product has, as the product spells it
    (the core compares ignoring case and spacing and suggests the closest for a typo);
    ``error`` says why they could not be read (missing rights, an outage).
    """

    known: frozenset[str] = frozenset()
    error: str | None = None


#: Adapter methods that need one capability whatever their arguments.
METHOD_CAPABILITIES: Mapping[str, Capability] = {
    "create_ticket": Capability.CREATE_TICKET,
    "add_note": Capability.ADD_NOTE,
    "find_ticket": Capability.FIND_BY_NUMBER,
    "webhook_hints": Capability.WEBHOOKS,
}
#: ``FieldChange`` attributes that move a ticket between queues, groups and assignees.
_ASSIGN_FIELDS = ("queue", "group", "assignee")


def capabilities_for_change(change: FieldChange) -> frozenset[Capability]:
    """What an ``update_ticket(change)`` needs the product to be able to do.

    Writing the link value back carries no capability of its own: every
    adapter either stores it or ignores it.
    """
    needed: set[Capability] = set()
    if change.status is not None:
        needed.add(Capability.SET_STATUS)
    if change.priority is not None:
        needed.add(Capability.SET_PRIORITY)
    if change.fields:
        needed.add(Capability.SET_FIELDS)
    if any(getattr(change, name, None) is not None for name in _ASSIGN_FIELDS):
        needed.add(Capability.ASSIGN)
    return frozenset(needed)


_Method = Callable[..., Awaitable[Any]]


def _guarded(name: str, method: _Method) -> _Method:
    """``method`` refusing with ``CapabilityError`` when its product lacks the capability."""

    @functools.wraps(method)
    async def guard(self: TicketAdapter, *args: Any, **kwargs: Any) -> Any:
        if name == "update_ticket":
            change = args[1] if len(args) > 1 else kwargs["change"]
            self.require(*capabilities_for_change(change))
        else:
            self.require(METHOD_CAPABILITIES[name])
        return await method(self, *args, **kwargs)

    guard.__capability_guard__ = True  # type: ignore[attr-defined]
    return guard


class AdapterSettings(BaseModel):
    """Base of every adapter's own settings model (``systems.<name>.settings``).

    Unknown keys are refused and the settings are immutable.  Build fields from
    the typed fields of :mod:`ticketbridge.adapters.kit.settings` (``NonEmpty``,
    ``RequiredSecret``, ``WebhookSecret``, ``HeaderName``, ``TableName``,
    ``HostList``, ``PageSize``) so their checks are the same for every product.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def webhook_secret_fields(cls) -> tuple[str, ...]:
        """Names of the fields marked ``WebhookSecret``."""
        return tuple(name for name, info in cls.model_fields.items() if is_webhook_secret(info))


#: How far before a write's first attempt a note found by body hash may be dated (clocks
#: of the two systems differ).
WRITE_WINDOW_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class AdapterContext:
    """What the daemon hands an adapter at construction.  No I/O happens there."""

    name: str
    base_url: str
    timeout: float = 20.0
    retry: RetrySettings = field(default_factory=RetrySettings)
    transport: httpx.AsyncBaseTransport | None = None
    webhook_transport: httpx.AsyncBaseTransport | None = None
    #: The request budget shared by every call to this system (one per system);
    #: ``None``: requests are not paced.
    budget: RequestBudget | None = None
    #: Status -> class overrides from ``systems.<name>.status_classes`` (on top of the
    #: adapter's defaults).
    status_classes: Mapping[str, StatusClass] = field(default_factory=dict)
    #: Priority -> rank overrides from ``systems.<name>.priority_ranks``.
    priority_ranks: Mapping[str, int] = field(default_factory=dict)
    #: The daemon's clock, for a product whose records the adapter itself dates (the
    #: e-mail adapter's copies of what it sends); real time but in the demo and tests.
    clock: Callable[[], datetime] = utcnow


class TicketAdapter(abc.ABC):
    """One product's API, translated to canonical tickets and notes."""

    kind: ClassVar[str]
    display_name: ClassVar[str]
    sides: ClassVar[frozenset[Side]]
    settings_model: ClassVar[type[AdapterSettings]]
    #: What this product can do; anything else is refused (see :class:`Capability`).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: The product's documented request quota as ``(requests, per_seconds)``, the
    #: default of ``systems.<name>.request_budget``; ``None``: no documented quota.
    request_budget: ClassVar[tuple[int, float] | None] = None
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
    #: The product's statuses and what they mean (its folder's ``defaults.py``);
    #: matched ignoring case.  Configuration may override entries per system.
    status_classes: ClassVar[Mapping[str, StatusClass]] = {}
    #: The product's priorities and their rank, 1 the most urgent (``defaults.py``).
    priority_ranks: ClassVar[Mapping[str, int]] = {}
    #: The product's own words for neutral ticket fields (e.g. ``{"lane": "queue"}``),
    #: which administrators may write in routing and rules instead of the neutral word.
    field_aliases: ClassVar[Mapping[str, str]] = {}

    #: How a ticket is completed or cancelled here when its client leaves (``defaults.py``).
    closing_terms: ClassVar[ClosingTerms] = DEFAULT_CLOSING_TERMS

    #: The product can say when something changed (IMAP IDLE): the daemon keeps a
    #: :meth:`wait_for_changes` running and polls at once when it returns True.
    announces_changes: ClassVar[bool] = False

    #: How coarse the change times of the product's listing are, when it is polled only
    #: (no webhooks): a ticket changed twice within one such tick shows one time, so the
    #: engine reads a ticket it saw change within the last tick again on its next poll.
    #: Zero (the default): exact times, or webhooks announce every change anyway.
    change_time_resolution: ClassVar[timedelta] = timedelta(0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Guard the subclass's capability-bound methods (see :meth:`require`)."""
        super().__init_subclass__(**kwargs)
        for name in (*METHOD_CAPABILITIES, "update_ticket"):
            method = cls.__dict__.get(name)
            if method is None or getattr(method, "__capability_guard__", False):
                continue
            if getattr(method, "__isabstractmethod__", False):
                continue
            setattr(cls, name, _guarded(name, method))

    def __init__(self, ctx: AdapterContext, settings: AdapterSettings) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.settings = settings
        self._classes = _folded({**self.status_classes, **ctx.status_classes})
        self._ranks = _folded({**self.priority_ranks, **ctx.priority_ranks})
        self.http = self._make_http(ctx)
        if ctx.budget is not None:
            self.http.budget = ctx.budget

    # -- capabilities ---------------------------------------------------------
    @classmethod
    def missing(cls, *needed: Capability) -> list[Capability]:
        """The capabilities among ``needed`` this product does not declare."""
        return [cap for cap in needed if cap not in cls.capabilities]

    def require(self, *needed: Capability) -> None:
        """Raise ``CapabilityError`` naming the product and the first undeclared capability.

        Every public method bound to a capability (``create_ticket``, ``add_note``,
        ``find_ticket``, ``webhook_hints``, and ``update_ticket`` for what the change
        sets) calls this before the adapter's own code runs, so a product never
        attempts what it does not declare.
        """
        for cap in self.missing(*needed):
            error = WebhookCapabilityError if cap is Capability.WEBHOOKS else CapabilityError
            raise error(
                self.kind,
                cap.value,
                system=self.name,
                detail=f"{self.display_name} declares only: "
                + (", ".join(sorted(c.value for c in self.capabilities)) or "nothing"),
            )

    # -- status classes and priority ranks ----------------------------------
    def status_class_of(self, status: str | None) -> StatusClass | None:
        """The class of ``status`` by the merged map (ignoring case), ``None`` if unmapped."""
        return None if status is None else self._classes.get(_fold(status))

    def priority_rank_of(self, priority: str | None) -> int | None:
        """The rank of ``priority`` by the merged map (ignoring case), ``None`` if unmapped."""
        return None if priority is None else self._ranks.get(_fold(priority))

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

    async def changes_after(
        self, since: datetime | None, after: str | None = None, *, max_pages: int | None = None
    ) -> ChangeBatch:
        """Tickets changed past the keyset ``(since, after)``, oldest first, reading at most
        ``max_pages`` pages.

        ``after`` is the id of the last ticket a previous read returned at ``since``
        (that read stopped at its page limit): this read continues right after it, in
        the listing's ``(updated_at, id)`` order.  With ``after`` ``None`` every ticket
        updated at or after ``since`` is listed.  A read that stops at ``max_pages``
        with more to come says so (``complete=False``).  Products with keyset paging
        override this; the default reads the whole listing (:meth:`changed_tickets`).
        """
        changes = after_keyset(await self.changed_tickets(since), since, after)
        return ChangeBatch(tuple(changes), complete=True)

    @abc.abstractmethod
    async def get_ticket(self, ticket_id: str) -> Ticket: ...

    def handled(self, ticket: Ticket) -> None:  # noqa: B027 - optional hook, no-op by default
        """The engine has stored what follows from ``ticket`` as read.

        A product whose records carry a version number uses this to recognise the echo
        of its own write (a webhook or a listing showing the version the write left the
        record at, right after a version already handled): nothing else changed, so
        nothing needs reading (see ``TicketChange.own_write``)."""

    async def own_echo(self, hint: WebhookHint) -> bool:
        """Does ``hint`` announce only the version our own write left the ticket at
        (see :meth:`handled`)?  Asked when the hint is processed: a webhook often comes
        before the write's answer, so an adapter may wait (briefly) for a write to the
        ticket that is in flight."""
        return False

    @abc.abstractmethod
    async def find_ticket(self, number: str) -> Ticket | None:
        """Look a ticket up by the number people see (for links made by hand)."""

    @abc.abstractmethod
    async def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[Note]:
        """The ticket's notes, oldest first: every one, or with ``since`` (a time from
        this system's own clock) at least every note created or changed at or after it.

        ``since`` lets a product filter on its side, so a ticket with a long history is
        not read whole for each new note; an adapter may return more than asked (all of
        them, if the API cannot filter), never less.
        """

    # -- writes (each idempotent, keyed) ------------------------------------
    @abc.abstractmethod
    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef: ...

    @abc.abstractmethod
    async def find_created(self, key: str) -> TicketRef | None:
        """The ticket an earlier ``create_ticket`` with ``key`` made, if any."""

    @abc.abstractmethod
    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        """Add the note exactly as drafted (the engine adds a visible marker only where a
        system opts in to one); return its id if known."""

    @abc.abstractmethod
    async def find_note(
        self, ticket_id: str, key: str, note: NoteDraft, since: datetime | None = None
    ) -> str | None:
        """The id of the note an earlier ``add_note(ticket_id, note, key)`` wrote, if any.

        Found by the marker when the draft carries one, else by author (the integration
        user, see :attr:`own_identity_known`), normalised body hash and the time window
        from ``since`` (the write's first attempt, or its source's time); most adapters
        read the notes and call :meth:`written_note`.
        """

    #: Whether the notes this adapter reads tell which ones its own identity wrote
    #: (``Note.by_us``); when not, a look-up matches by body hash and time alone.
    own_identity_known: bool = True

    def written_note(
        self,
        notes: list[Note],
        note: NoteDraft,
        since: datetime | None,
        *,
        newest: bool = False,
    ) -> str | None:
        """The id of the first (``newest``: the last) of ``notes`` that is the write of
        ``note``: the same marker when the draft has one; else written by us, the same
        body, not before ``since`` (less :data:`WRITE_WINDOW_SLACK` for clock skew)."""
        ordered = list(reversed(notes)) if newest else notes
        marker = MARKER_RE.search(note.text)
        if marker is not None:
            return next((n.id for n in ordered if marker.group(0) in n.text), None)
        wanted = body_hash(note.text)
        earliest = None if since is None else since - WRITE_WINDOW_SLACK
        for candidate in ordered:
            if self.own_identity_known and not candidate.by_us:
                continue
            if earliest is not None and candidate.created_at < earliest:
                continue
            if body_hash(candidate.text) == wanted:
                return candidate.id
        return None

    @abc.abstractmethod
    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        """Set fields; setting a value the ticket already has is a no-op."""

    # -- webhooks -------------------------------------------------------------
    def webhook_precheck(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Refuse a webhook from its (lower-cased) headers and query alone, before its body
        is read: a missing or wrong shared token, a missing signature header.

        Raises ``WebhookAuthError``; returning says nothing about the body, which
        :meth:`webhook_hints` still verifies.  The default refuses every request of a
        product without webhooks and lets the rest through.
        """
        self.require(Capability.WEBHOOKS)

    async def webhook_hints(self, request: WebhookRequest) -> list[WebhookHint]:
        """Verify a webhook and say which tickets it hints at.

        Raises ``WebhookAuthError`` or ``WebhookPayloadError``.  Products
        without webhooks keep this default, which refuses every request
        (``WebhookCapabilityError``, an auth error and a ``CapabilityError`` at once).
        """
        self.require(Capability.WEBHOOKS)
        raise WebhookAuthError(f"{self.kind} declares webhooks but does not verify them")

    # -- names --------------------------------------------------------------------
    async def wait_for_changes(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for the product to say something changed; True when
        it did (the daemon then polls at once).  Only for ``announces_changes`` products; it
        must not hold up the adapter's other calls (use a connection of its own)."""
        await asyncio.sleep(timeout)
        return False

    async def open_tickets_of(self, company: str) -> list[Ticket] | None:
        """The open tickets of a client company (as tickets carry it in ``company``), for a
        client's open ticket review at its closeout; ``None``: the product cannot list them
        (the default), and only the tickets the store links are reviewed."""
        return None

    async def unmatched(self, since: datetime | None = None) -> list[Unmatched]:
        """What the vendor has that no link holds and a person should review (the review
        list, ``ticketbridge mail unmatched``), including what is already linked: the caller
        leaves those out.  Optional; none by default (an API vendor's tickets are opened by
        us or linked by number)."""
        return []

    async def lookup_names(
        self, wanted: Mapping[NameKind, frozenset[str]]
    ) -> Mapping[NameKind, NameLookup]:
        """The names of each wanted kind that exist in the product (``check-config --online``).

        ``wanted`` holds the names configuration and rules use, per kind, so a product
        can narrow what it reads (e.g. statuses of the queues named only).  A kind left
        out of the answer was not checked; this default checks none.
        """
        return {}

    # -- helpers ----------------------------------------------------------------
    def describe(self) -> Mapping[str, Any]:
        return {"adapter": self.kind, "system": self.name, "base_url": self.ctx.base_url}


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _folded(mapping: Mapping[str, _V]) -> dict[str, _V]:
    return {_fold(key): value for key, value in mapping.items()}
