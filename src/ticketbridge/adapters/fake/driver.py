"""The people using a fake system, for the contract suite (see ``sandbox/driver.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx
from starlette.types import ASGIApp

from ticketbridge.adapters.base import Capability
from ticketbridge.adapters.fake.simulator import DEFAULT_TOKEN, FakeWorld, create_app
from ticketbridge.adapters.fake.webhooks import SIGNATURE_HEADER, sign
from ticketbridge.domain import FieldChange, Ticket, Visibility, WebhookRequest
from ticketbridge.sandbox.driver import SimulatorDriver, StoredNote

__all__ = ["FakeDriver"]

WEBHOOK_SECRET = "fake-webhook-secret"  # noqa: S105 - a test credential


class FakeDriver(SimulatorDriver):
    kind = "fake"
    note_write = ("POST", r"^/api/tickets/[^/]+/notes$")
    create_write = ("POST", r"^/api/tickets$")
    update_write = ("PATCH", r"^/api/tickets/[^/]+$")
    written_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "set_status": ("status",),
        "set_priority": ("priority",),
    }
    public_note_field: ClassVar[str | None] = "visibility"

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(clock=clock)
        self._client: httpx.AsyncClient | None = None

    def create_app(self) -> ASGIApp:
        self.world = FakeWorld(clock=self.clock)
        return create_app(self.world)

    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        token = DEFAULT_TOKEN if valid_credentials else "wrong-token"
        return {"token": token, "webhook_secret": WEBHOOK_SECRET}

    def _person(self) -> httpx.AsyncClient:
        """A person's client on the product's own API (the fake product needs no actor class)."""
        if self._client is None:
            headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
            self._client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)
        return self._client

    async def close_actors(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self._person().request(method, path, **kwargs)
        resp.raise_for_status()
        return resp.json()

    async def open_ticket(self, summary: str) -> str:
        ticket = await self._call("POST", "/api/tickets", json={"summary": summary})
        return str(ticket["ref"]["id"])

    async def find_created(self, key: str) -> str | None:
        found = await self._call("GET", "/api/search", params={"correlation_id": key})
        return next((str(t["ref"]["id"]) for t in found["items"]), None)

    async def touch(self, ticket_id: str) -> None:
        ticket = await self._call("GET", f"/api/tickets/{ticket_id}")
        fields = {**ticket["fields"], "touched": str(int(ticket["fields"].get("touched", 0)) + 1)}
        await self._call("PATCH", f"/api/tickets/{ticket_id}", json={"fields": fields})

    async def add_note(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        body = {"text": text, "visibility": visibility.value}
        await self._call(
            "POST",
            f"/api/tickets/{ticket_id}/notes",
            json=body,
            headers={"X-Sandbox-User": "Dana Lee"},
        )

    async def notes(self, ticket_id: str) -> list[StoredNote]:
        found = await self._call("GET", f"/api/tickets/{ticket_id}/notes")
        return [StoredNote(n["text"], Visibility(n["visibility"])) for n in found["items"]]

    def sample_changes(self, ticket: Ticket) -> Mapping[str, FieldChange]:
        return {
            Capability.SET_STATUS.value: FieldChange(status="In Progress"),
            Capability.SET_PRIORITY.value: FieldChange(priority="P2"),
            Capability.SET_FIELDS.value: FieldChange(external_ref="X-1", fields={"flag": "on"}),
            Capability.ASSIGN.value: FieldChange(queue="Tier 2", assignee="adavis", group="T2"),
        }

    async def send_webhooks_to(self, url: str) -> None:
        """Make the simulator POST a signed webhook to ``url`` on every ticket change."""
        body = {"url": url, "secret": WEBHOOK_SECRET}
        resp = await self._admin_client().post("/_sandbox/outbound", json=body)
        resp.raise_for_status()

    def webhook(self, ticket_id: str, *, valid: bool = True) -> WebhookRequest | None:
        body = json.dumps({"ticket_id": ticket_id, "delivery": "d-1"}).encode()
        secret = WEBHOOK_SECRET if valid else "a-guess"
        return WebhookRequest(
            headers={SIGNATURE_HEADER.lower(): sign(secret, body)}, query={}, body=body
        )
