"""An MSP engineer in the ConnectWise PSA simulator, for the contract suite.

Also carries the data the suite validates ConnectWiseAdapter's requests with:
the 2025.1 OpenAPI subset in ``shared/specs`` and where it departs from the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.types import ASGIApp

from ticketbridge.adapters.base import Capability
from ticketbridge.adapters.connectwise.actor import ConnectWiseActor
from ticketbridge.adapters.connectwise.simulator import (
    API_MEMBER_IDENTIFIER,
    CW_PREFIX,
    ConnectWiseState,
    create_app,
)
from ticketbridge.domain import FieldChange, Ticket, Visibility, WebhookRequest
from ticketbridge.sandbox.driver import ApiSpec, SimulatorDriver, SpecExclusion, SpecFix, StoredNote

__all__ = ["SPEC", "ConnectWiseDriver"]

SPEC = ApiSpec(
    name="connectwise",
    spec_file="connectwise/connectwise-manage-2025.1.subset.openapi.json",
    json_media_types=("application/vnd.connectwise.com+json",),
    exclusions=(
        SpecExclusion(
            "GET",
            "/service/boards/{id}/statuses",
            "statuses are per board; the real path (BoardStatusesApi) is outside the 2025.1 "
            "subset (shared/specs/README.md, ConnectWise 'Reference data')",
        ),
    ),
    fixes=(
        SpecFix(
            "/components/schemas/CustomFieldValue/properties/value",
            {"description": "any JSON value (text, number, boolean, date string or null)"},
            "the subset was rebuilt from a generated Go client that types this as a map; the "
            "API carries the field's scalar value, as the spec's own relaxation of "
            "PatchOperation.value acknowledges",
        ),
    ),
)


class ConnectWiseDriver(SimulatorDriver):
    kind = "connectwise"
    spec = SPEC
    note_write = ("POST", r"/service/tickets/\d+/notes$")
    update_write = ("PATCH", r"/service/tickets/\d+$")
    written_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "set_status": ("status",),
        "set_priority": ("priority",),
    }
    public_note_field: ClassVar[str | None] = "detailDescriptionFlag"
    _actor: ConnectWiseActor | None = None

    def create_app(self) -> ASGIApp:
        self.state = ConnectWiseState(clock=self.clock)
        return create_app(self.state)

    @property
    def base_url(self) -> str:
        return self.url + CW_PREFIX

    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        return {
            "company_id": "msp",
            "public_key": "pub",
            "private_key": "priv" if valid_credentials else "wrong",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "api_member": API_MEMBER_IDENTIFIER,
        }

    def _engineer(self) -> ConnectWiseActor:
        if self._actor is None:
            self._actor = ConnectWiseActor(self.url)
        return self._actor

    async def close_actors(self) -> None:
        if self._actor is not None:
            await self._actor.aclose()
            self._actor = None

    async def open_ticket(self, summary: str) -> str:
        ticket = await self._engineer().open_ticket(
            summary=summary,
            description="Opened by the contract suite.",
            board="Vendor Escalations",
            company="ACME",
            contact="Dana Whitfield",
            priority="Priority 3 - Normal Response",
        )
        return str(ticket["id"])

    async def touch(self, ticket_id: str) -> None:
        ticket = await self._engineer().ticket(int(ticket_id))
        ops = [{"op": "replace", "path": "summary", "value": f"{ticket['summary']} (seen)"[:100]}]
        resp = await self._engineer().http.patch(f"/service/tickets/{ticket_id}", json=ops)
        resp.raise_for_status()

    async def add_note(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        internal = visibility is not Visibility.PUBLIC
        await self._engineer().add_note(int(ticket_id), text, internal=internal)

    async def add_time_entry(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        """Log time with a note, as a technician would (public: the Discussion flag)."""
        public = visibility is Visibility.PUBLIC
        await self._engineer().add_time_entry(
            int(ticket_id), text, discussion=public, internal=not public
        )

    async def notes(self, ticket_id: str) -> list[StoredNote]:
        return [
            StoredNote(
                str(n["text"]),
                Visibility.INTERNAL
                if n.get("internalAnalysisFlag")
                else Visibility.PUBLIC
                if n.get("detailDescriptionFlag")
                else Visibility.UNKNOWN,
            )
            for n in await self._engineer().notes(int(ticket_id))
        ]

    def sample_changes(self, ticket: Ticket) -> Mapping[str, FieldChange]:
        return {
            Capability.SET_STATUS.value: FieldChange(status="In Progress"),
            Capability.SET_PRIORITY.value: FieldChange(priority="Priority 2 - Quick Response"),
            Capability.SET_FIELDS.value: FieldChange(external_ref="INC0010001"),
            Capability.ASSIGN.value: FieldChange(assignee="adavis"),
        }

    def webhook(self, ticket_id: str, *, valid: bool = True) -> WebhookRequest | None:
        key_id = self.state.current_key_id
        payload = {
            "MessageId": f"contract-{ticket_id}",
            "Action": "updated",
            "Type": "ticket",
            "ID": int(ticket_id),
            "CompanyId": "msp",
            "Metadata": {"key_url": f"{self.url}/_sandbox/callbacks/signing-key/{key_id}"},
        }
        body = json.dumps(payload).encode()
        signature = self.state.sign(body, key_id) if valid else "bm90IHRoZSBzaWduYXR1cmU="
        headers = {"content-type": "application/json", "x-content-signature": signature}
        return WebhookRequest(headers=headers, query={"recordId": ticket_id}, body=body)
