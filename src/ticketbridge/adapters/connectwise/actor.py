"""An MSP engineer (or admin) driving the ConnectWise PSA simulator through its REST API.

The demo and the end-to-end tests play people with it; it speaks the real API, so it
works against a real ConnectWise instance too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

__all__ = ["ConnectWiseActor"]

CW_PREFIX = "/v4_6_release/apis/3.0"
CW_ACCEPT = "application/vnd.connectwise.com+json; version=2025.1"


class ConnectWiseActor:
    """An MSP engineer (or admin) using the ConnectWise PSA REST API."""

    def __init__(
        self,
        base_url: str,
        *,
        company_id: str = "msp",
        public_key: str = "pub",
        private_key: str = "priv",
        client_id: str = "00000000-0000-0000-0000-000000000000",
        member: str | None = "jsmith",
    ) -> None:
        """``member``: the technician played (the simulator's ``X-Sandbox-Member`` header,
        so what they write is theirs, not the API member's); ``None``: the API member."""
        headers = {"clientId": client_id, "Accept": CW_ACCEPT}
        if member is not None:
            headers["X-Sandbox-Member"] = member
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + CW_PREFIX,
            auth=(f"{company_id}+{public_key}", private_key),
            headers=headers,
            timeout=10,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.http.request(method, path, **kwargs)
        resp.raise_for_status()
        return resp.json()

    async def open_ticket(
        self,
        *,
        summary: str,
        description: str,
        board: str,
        company: str,
        contact: str,
        priority: str,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST",
            "/service/tickets",
            json={
                "summary": summary,
                "initialDescription": description,
                "board": {"name": board},
                "company": {"identifier": company},
                "contact": {"name": contact},
                "priority": {"name": priority},
            },
        )
        return result

    async def ticket(self, ticket_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/service/tickets/{ticket_id}")
        return result

    async def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json(
            "GET",
            f"/service/tickets/{ticket_id}/notes",
            params={"pageSize": 1000, "orderBy": "id asc"},
        )
        return result

    async def add_note(
        self, ticket_id: int, text: str, *, internal: bool, member: str = "jsmith"
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST",
            f"/service/tickets/{ticket_id}/notes",
            json={
                "text": text,
                "detailDescriptionFlag": not internal,
                "internalAnalysisFlag": internal,
                "member": {"identifier": member},
            },
        )
        return result

    async def add_time_entry(
        self,
        ticket_id: int,
        text: str,
        *,
        discussion: bool = True,
        internal: bool = False,
        resolution: bool = False,
        member: str = "jsmith",
        minutes: int = 15,
    ) -> dict[str, Any]:
        """Log time on the ticket with a note, as technicians write most Discussion notes:
        ``POST /time/entries`` charged to the service ticket, the note flagged for the
        Discussion, Internal Analysis and Resolution sections as asked."""
        end = datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(minutes=minutes)
        result: dict[str, Any] = await self._json(
            "POST",
            "/time/entries",
            json={
                "chargeToType": "ServiceTicket",
                "chargeToId": ticket_id,
                "member": {"identifier": member},
                "timeStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "timeEnd": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "notes": text,
                "addToDetailDescriptionFlag": discussion,
                "addToInternalAnalysisFlag": internal,
                "addToResolutionFlag": resolution,
            },
        )
        return result

    async def set_status(self, ticket_id: int, status: str) -> None:
        resp = await self.http.patch(
            f"/service/tickets/{ticket_id}",
            json=[{"op": "replace", "path": "status", "value": {"name": status}}],
        )
        resp.raise_for_status()

    async def register_callback(self, url: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST",
            "/system/callbacks",
            json={
                "url": url,
                "objectId": 1,
                "type": "Ticket",
                "level": "Owner",
                "description": "ticketbridge",
                "inactiveFlag": False,
            },
        )
        return result
