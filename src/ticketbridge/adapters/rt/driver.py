"""The people using a Request Tracker, for the contract suite (see ``sandbox/driver.py``).

A vendor agent acts through REST2 with a token of their own; they read notes back from
the ticket's transactions (Create and Correspond are public, Comment internal).
:class:`RtDriver` plays them against the simulator; :class:`LiveRtDriver` (tests) against
a real RT started by ``local.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx
from starlette.types import ASGIApp

from ticketbridge.adapters.base import Capability
from ticketbridge.adapters.rt.simulator import (
    AGENT_TOKEN,
    API,
    API_USER,
    DEFAULT_QUEUE,
    DEFAULT_TOKEN,
    WEB_PATH,
    RtWorld,
    create_app,
)
from ticketbridge.domain import FieldChange, Ticket, Visibility
from ticketbridge.sandbox.driver import SimulatorDriver, StoredNote

__all__ = ["RtAgent", "RtDriver"]


class RtAgent:
    """A vendor agent on RT's REST2 API (``base_url`` is RT's web root)."""

    def __init__(self, base_url: str, token: str, queue: str, requestor: str | None) -> None:
        self.queue = queue
        self.requestor = requestor
        self.client = httpx.AsyncClient(
            base_url=f"{base_url.rstrip('/')}/REST/2.0",
            headers={"Authorization": f"token {token}", "User-Agent": "rt-agent"},
            timeout=30,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.client.request(method, path, **kwargs)
        resp.raise_for_status()
        return resp.json()

    async def open_ticket(self, summary: str, content: str | None = None) -> str:
        body: dict[str, Any] = {"Queue": self.queue, "Subject": summary}
        if content:
            body.update({"Content": content, "ContentType": "text/plain"})
        if self.requestor:
            body["Requestor"] = self.requestor
        return str((await self.call("POST", "/ticket", json=body))["id"])

    async def note(
        self, ticket_id: str, text: str, visibility: Visibility, content_type: str = "text/plain"
    ) -> str:
        action = "correspond" if visibility.is_public else "comment"
        resp = await self.client.post(
            f"/ticket/{ticket_id}/{action}", json={"Content": text, "ContentType": content_type}
        )
        resp.raise_for_status()
        return resp.headers["location"].rsplit("/", 1)[-1]

    async def set(self, ticket_id: str, **fields: Any) -> list[str]:
        answer: list[str] = await self.call("PUT", f"/ticket/{ticket_id}", json=fields)
        return answer

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.call("GET", f"/ticket/{ticket_id}")
        return found

    async def notes(self, ticket_id: str) -> list[tuple[str, str, str]]:
        """``(type, creator, text)`` of the ticket's Create, Correspond and Comment messages."""
        query = (
            f"ObjectType = 'RT::Ticket' AND ObjectId = {int(ticket_id)} AND "
            "(Type = 'Create' OR Type = 'Correspond' OR Type = 'Comment')"
        )
        txns = await self.call(
            "GET",
            "/transactions",
            params={"query": query, "fields": "Type,Creator", "per_page": 100},
        )
        kinds = {t["id"]: (t["Type"], t["Creator"]["id"]) for t in txns["items"]}
        parts = await self.call(
            "GET",
            f"/ticket/{int(ticket_id)}/attachments",
            params={"fields": "TransactionId,ContentType,Content", "per_page": 100},
        )
        out: dict[str, tuple[str, str, str]] = {}
        for part in parts["items"]:
            txn = str(part["TransactionId"])
            if txn in kinds and txn not in out and part.get("Content"):
                out[txn] = (*kinds[txn], str(part["Content"]))
        return [out[t] for t in sorted(out, key=int)]


class RtDriver(SimulatorDriver):
    kind = "rt"
    note_write = ("POST", rf"^{API}/ticket/[0-9]+/(correspond|comment)$")
    create_write = ("POST", rf"^{API}/ticket$")
    update_write = ("PUT", rf"^{API}/ticket/[0-9]+$")
    written_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "set_status": ("Status",),
        "set_priority": ("Priority",),
    }
    #: RT makes a note public by its endpoint (correspond, not comment), not by a field.
    public_note_field: ClassVar[str | None] = None
    known_gaps: ClassVar[Mapping[str, str]] = {
        "test_an_ignored_public_note_write_is_refused_naming_the_field": (
            "RT has no body field that makes a note public: a correspondence is public and "
            "a comment internal by endpoint, so there is no field a product could drop "
            "(the answer, 'Correspondence added' or 'Comments added', is checked instead)"
        ),
    }

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(clock=clock)
        self._agent: RtAgent | None = None

    def create_app(self) -> ASGIApp:
        self.world = RtWorld(clock=self.clock)
        return create_app(self.world)

    @property
    def base_url(self) -> str:
        return f"{self.url}{WEB_PATH}"

    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        token = DEFAULT_TOKEN if valid_credentials else "1-14-00000000000000000000000000000000"
        return {"token": token, "user": API_USER, "queue": DEFAULT_QUEUE}

    def agent(self) -> RtAgent:
        if self._agent is None:
            self._agent = RtAgent(self.base_url, AGENT_TOKEN, DEFAULT_QUEUE, None)
        return self._agent

    async def close_actors(self) -> None:
        if self._agent is not None:
            await self._agent.aclose()
            self._agent = None

    async def open_ticket(self, summary: str) -> str:
        return await self.agent().open_ticket(summary)

    async def find_created(self, key: str) -> str | None:
        found = await self.agent().call(
            "GET",
            "/tickets",
            params={"query": f"Subject LIKE 'ref {key}'", "fields": "Subject"},
        )
        return next((str(t["id"]) for t in found["items"]), None)

    async def touch(self, ticket_id: str) -> None:
        ticket = await self.agent().ticket(ticket_id)
        await self.agent().set(ticket_id, Subject=f"{ticket['Subject']} (touched)")

    async def add_note(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        await self.agent().note(ticket_id, text, visibility)

    async def notes(self, ticket_id: str) -> list[StoredNote]:
        return [
            StoredNote(text, Visibility.INTERNAL if kind == "Comment" else Visibility.PUBLIC)
            for kind, _, text in await self.agent().notes(ticket_id)
        ]

    def sample_changes(self, ticket: Ticket) -> Mapping[str, FieldChange]:
        status = "stalled" if ticket.status != "stalled" else "open"
        priority = "80" if ticket.priority != "80" else "20"
        return {
            Capability.SET_STATUS.value: FieldChange(status=status),
            Capability.SET_PRIORITY.value: FieldChange(priority=priority),
        }
