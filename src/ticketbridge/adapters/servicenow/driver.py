"""A vendor agent in the ServiceNow simulator, for the contract suite.

Also carries the data the suite validates ServiceNowAdapter's requests with:
the Now API spec in ``shared/specs`` and where it departs from the Table API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.types import ASGIApp

from ticketbridge.adapters.base import Capability
from ticketbridge.adapters.servicenow.actor import ServiceNowActor
from ticketbridge.adapters.servicenow.simulator import ServiceNowState, create_app
from ticketbridge.domain import FieldChange, Ticket, Visibility, WebhookRequest
from ticketbridge.sandbox.driver import (
    ApiSpec,
    BodylessResponse,
    SimulatorDriver,
    SpecFix,
    StoredNote,
)

__all__ = ["SPEC", "ServiceNowDriver"]

WEBHOOK_TOKEN = "contract-webhook-token"  # noqa: S105 - a test credential
_DATETIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"}
_DATETIME_REASON = (
    "with sysparm_display_value=false the Table API returns stored UTC date-times as "
    "'YYYY-MM-DD HH:MM:SS' (no 'T', no offset), as in the vendor's Table API example "
    "responses; the community spec claims RFC 3339"
)

SPEC = ApiSpec(
    name="servicenow",
    spec_file="servicenow/servicenow-now-api.ticketbridge.openapi.json",
    api_prefix="/api/now",
    fixes=(
        SpecFix(
            "/components/schemas/Record/properties/sys_created_on", _DATETIME, _DATETIME_REASON
        ),
        SpecFix(
            "/components/schemas/Record/properties/sys_updated_on", _DATETIME, _DATETIME_REASON
        ),
        SpecFix(
            "/components/schemas/Record/properties/sys_mod_count",
            {"type": "string", "pattern": r"^\d+$"},
            "the Table API's JSON carries every field value as a string "
            '(vendor example responses: "sys_mod_count": "7"); the community spec says integer',
        ),
    ),
    bodyless=(
        BodylessResponse(
            "X-no-response-body",
            "true",
            "the Table API suppresses the echoed record when asked to (vendor Table API doc, "
            "request header X-no-response-body); the community spec does not model the header",
        ),
    ),
)

_JOURNAL = {"comments": Visibility.PUBLIC, "work_notes": Visibility.INTERNAL}


class ServiceNowDriver(SimulatorDriver):
    kind = "servicenow"
    spec = SPEC
    note_write = ("PATCH", r"^/api/now/table/incident/[0-9a-f]{32}$")
    create_write = ("POST", r"^/api/now/table/incident$")
    update_write = ("PATCH", r"^/api/now/table/incident/[0-9a-f]{32}$")
    written_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "set_status": ("state",),
        "set_priority": ("impact", "urgency"),
    }
    public_note_field: ClassVar[str | None] = "comments"

    _actor: ServiceNowActor | None = None

    def create_app(self) -> ASGIApp:
        self.state = ServiceNowState(clock=self.clock)
        return create_app(self.state)

    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        return {
            "username": "ticketbridge.integration",
            "password": "integration-pass" if valid_credentials else "wrong",
            "webhook_token": WEBHOOK_TOKEN,
            # people open the suite's incidents, not ticketbridge: poll them all
            "poll_query": "",
        }

    def _agent(self) -> ServiceNowActor:
        if self._actor is None:
            self._actor = ServiceNowActor(self.url)
        return self._actor

    async def close_actors(self) -> None:
        if self._actor is not None:
            await self._actor.aclose()
            self._actor = None

    async def open_ticket(self, summary: str) -> str:
        resp = await self._agent().http.post(
            "/api/now/table/incident",
            json={"short_description": summary, "description": "Opened by the contract suite."},
        )
        resp.raise_for_status()
        return str(resp.json()["result"]["sys_id"])

    async def find_created(self, key: str) -> str | None:
        rows = await self._agent().query("incident", f"correlation_id={key}")
        return str(rows[0]["sys_id"]) if rows else None

    async def touch(self, ticket_id: str) -> None:
        incident = await self._agent().incident(ticket_id)
        await self._agent().update(ticket_id, short_description=f"{incident['short_description']}.")

    async def add_note(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        field = "comments" if visibility is Visibility.PUBLIC else "work_notes"
        await self._agent().update(ticket_id, **{field: text})

    async def notes(self, ticket_id: str) -> list[StoredNote]:
        return [
            StoredNote(str(row["value"]), _JOURNAL.get(row["element"], Visibility.UNKNOWN))
            for row in await self._agent().journal(ticket_id)
        ]

    def sample_changes(self, ticket: Ticket) -> Mapping[str, FieldChange]:
        return {
            Capability.SET_STATUS.value: FieldChange(status="In Progress"),
            Capability.SET_PRIORITY.value: FieldChange(priority="2"),
            Capability.SET_FIELDS.value: FieldChange(fields={"category": "network"}),
        }

    def webhook(self, ticket_id: str, *, valid: bool = True) -> WebhookRequest | None:
        body = json.dumps({"table": "incident", "sys_id": ticket_id, "sys_mod_count": "1"})
        token = WEBHOOK_TOKEN if valid else "a-guess"
        return WebhookRequest(headers={"x-ticketbridge-token": token}, query={}, body=body.encode())
