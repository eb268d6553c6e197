"""A simulator driver: the people using one product, for tests that know no product.

Each product folder implements :class:`SimulatorDriver` (``adapters/<kind>/driver.py``)
and names it in its adapter class (``TicketAdapter.driver``).  The contract suite
(``tests/contract``) plays every registered product through its driver: it starts
the product's simulator on loopback, hands the adapter the settings to reach it,
acts as a human in the product (open a ticket, add a note, change a ticket), reads
back what the product stored, installs faults (:class:`~ticketbridge.sandbox.FaultPlan`
rules through ``/_sandbox/faults``), reads the request log and builds webhook
requests.

The driver also carries, as data, what the suite checks requests against: the
product's OpenAPI file in ``shared/specs`` and the known places where the file
and the documented product disagree (:class:`ApiSpec`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import httpx
from starlette.types import ASGIApp

from ticketbridge.clock import utcnow
from ticketbridge.domain import FieldChange, Ticket, Visibility, WebhookRequest
from ticketbridge.sandbox.server import SandboxServer

__all__ = [
    "ApiSpec",
    "BodylessResponse",
    "SimulatorDriver",
    "SpecExclusion",
    "SpecFix",
    "StoredNote",
    "load_driver",
]


# -- what a product's requests are checked against -------------------------------------
@dataclass(frozen=True)
class SpecExclusion:
    """A call the adapter makes that the spec file does not describe, and why."""

    method: str
    path: str  # a template below the API root, e.g. "/service/boards/{id}/statuses"
    reason: str


@dataclass(frozen=True)
class SpecFix:
    """A place where the spec contradicts the product's documented responses, and the fix."""

    pointer: str  # JSON pointer into the spec document
    value: Any
    reason: str


@dataclass(frozen=True)
class BodylessResponse:
    """Requests carrying ``header: value`` may get a 2xx with no body; the spec does not say so."""

    header: str
    value: str
    reason: str


@dataclass(frozen=True)
class ApiSpec:
    """A product's OpenAPI file (relative to ``shared/specs``) and its known deviations."""

    name: str
    spec_file: str
    #: Where the spec's server URL sits below the adapter's base URL.
    api_prefix: str = ""
    #: Media types the validator does not decode by itself (vendor ``+json`` types).
    json_media_types: tuple[str, ...] = ()
    exclusions: tuple[SpecExclusion, ...] = ()
    fixes: tuple[SpecFix, ...] = ()
    bodyless: tuple[BodylessResponse, ...] = ()


@dataclass(frozen=True)
class StoredNote:
    """A note as the product stores it, read back by the driver (not through the adapter)."""

    text: str
    visibility: Visibility


# -- the driver ----------------------------------------------------------------------------
class SimulatorDriver(abc.ABC):
    """Runs one product's simulator and acts as the people using that product.

    ``start()`` serves the simulator on loopback; :meth:`system` is then the
    ``systems.<name>`` block (kind, base_url, settings) an adapter needs to reach
    it.  Human actions go through the product's own API (its actor), as a person
    would; fault and request-log helpers use the framework's ``/_sandbox``
    endpoints.  ``clock`` is the simulator's clock (tests pass a fake one to make
    same-second records).
    """

    kind: ClassVar[str]
    #: The OpenAPI file requests are validated against, when the vendor publishes one.
    spec: ClassVar[ApiSpec | None] = None
    #: ``(method, path regex)`` of the request that writes a note (for apply-then-fail).
    note_write: ClassVar[tuple[str, str]]
    #: ``(method, path regex)`` of the request that opens a ticket, when the adapter can.
    create_write: ClassVar[tuple[str, str] | None] = None
    #: ``(method, path regex)`` of the request that updates a ticket's fields.
    update_write: ClassVar[tuple[str, str]]
    #: The request-body fields each settable capability (``Capability`` value) writes, for
    #: "field write silently ignored" faults (``ignore_fields``).
    written_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: The request-body field that makes a note written by the adapter public.
    public_note_field: ClassVar[str | None] = None

    #: Contract checks the adapter is known to fail today (check name -> why); the suite
    #: marks them strict xfail, so fixing the adapter makes the entry fail until removed.
    known_gaps: ClassVar[Mapping[str, str]] = {}
    #: Contract checks that cannot apply to the product (check name -> because ...), e.g.
    #: HTTP faults for a product spoken to over another protocol; the suite skips them
    #: with the reason.  Give the product's own equivalent a test of its own.
    not_applicable: ClassVar[Mapping[str, str]] = {}

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock: Callable[[], datetime] = clock or utcnow
        self._server: SandboxServer | None = None
        self._admin: httpx.AsyncClient | None = None

    # -- life cycle ----------------------------------------------------------------
    @abc.abstractmethod
    def create_app(self) -> ASGIApp:
        """A fresh simulator app on :attr:`clock`, with the credentials :meth:`settings` uses."""

    def start(self) -> str:
        """Serve the simulator on a free loopback port; return its URL."""
        if self._server is None:
            self._server = SandboxServer(self.create_app()).start()
            self._admin = httpx.AsyncClient(base_url=self._server.url, timeout=10)
        return self._server.url

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None
        await self.close_actors()
        if self._server is not None:
            self._server.stop()
            self._server = None

    @abc.abstractmethod
    async def close_actors(self) -> None:
        """Close the HTTP clients of the people the driver plays."""

    @property
    def url(self) -> str:
        """The simulator's root URL (``http://127.0.0.1:PORT``)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server.url

    @property
    def base_url(self) -> str:
        """The adapter's ``base_url`` for this simulator (the root unless the API sits below)."""
        return self.url

    def system(self, *, valid_credentials: bool = True, **settings: Any) -> dict[str, Any]:
        """The ``systems.<name>`` block reaching the simulator; ``settings`` override."""
        return {
            "kind": self.kind,
            "base_url": self.base_url,
            "settings": {**self.settings(valid_credentials=valid_credentials), **settings},
        }

    @abc.abstractmethod
    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        """The adapter settings for the simulator; wrong credentials when asked to."""

    #: Settings that make the adapter read lists in pages of two records.
    small_pages: ClassVar[Mapping[str, Any]] = {"page_size": 2}

    # -- acting as a person ---------------------------------------------------------
    @abc.abstractmethod
    async def open_ticket(self, summary: str) -> str:
        """Open a ticket as a person would; return the id the adapter knows it by."""

    async def find_created(self, key: str) -> str | None:
        """The id of the ticket the adapter opened with ``key``, read by a person."""
        return None

    @abc.abstractmethod
    async def touch(self, ticket_id: str) -> None:
        """Change the ticket as a person would, so its updated time moves."""

    @abc.abstractmethod
    async def add_note(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        """Add a note as a person would (public: the customer sees it)."""

    @abc.abstractmethod
    async def notes(self, ticket_id: str) -> list[StoredNote]:
        """Every note the product stores on the ticket, oldest first."""

    def sample_changes(self, ticket: Ticket) -> Mapping[str, FieldChange]:
        """A change per settable capability (``Capability`` value) that differs from ``ticket``."""
        return {}

    # -- webhooks ---------------------------------------------------------------------
    def webhook(self, ticket_id: str, *, valid: bool = True) -> WebhookRequest | None:
        """A webhook about the ticket, correctly authenticated or not; None without webhooks."""
        return None

    # -- faults and the request log ---------------------------------------------------
    def _admin_client(self) -> httpx.AsyncClient:
        if self._admin is None:
            raise RuntimeError("the simulator is not started")
        return self._admin

    async def add_faults(self, rules: Iterable[Mapping[str, Any]]) -> None:
        """Arm :class:`~ticketbridge.sandbox.FaultRule` rules (dicts of their fields)."""
        resp = await self._admin_client().post("/_sandbox/faults", json=list(rules))
        resp.raise_for_status()

    async def clear_faults(self) -> None:
        resp = await self._admin_client().delete("/_sandbox/faults")
        resp.raise_for_status()

    async def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        """The API requests the simulator saw (method, path, query, status, fault)."""
        params = {"method": method} if method else {}
        resp = await self._admin_client().get("/_sandbox/requests", params=params)
        resp.raise_for_status()
        records: list[dict[str, Any]] = resp.json()
        return records

    async def clear_requests(self) -> None:
        resp = await self._admin_client().delete("/_sandbox/requests")
        resp.raise_for_status()


def load_driver(target: str) -> type[SimulatorDriver]:
    """The driver class named by ``module:Class`` (``TicketAdapter.driver``)."""
    from importlib import import_module

    module_name, _, attr = target.partition(":")
    cls = getattr(import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, SimulatorDriver)):
        raise TypeError(f"{target} is not a SimulatorDriver")
    return cls
