"""A vendor agent (or the instance admin) driving the ServiceNow simulator through the Table API.

The demo and the end-to-end tests play people with it; it speaks the real API.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ServiceNowActor"]


class ServiceNowActor:
    """A vendor agent (or the instance admin) using the ServiceNow Table API."""

    def __init__(
        self,
        base_url: str,
        user: str = "beth.anglin",
        password: str = "agent-pass",  # noqa: S107 - the simulator's default agent
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=(user, password),
            headers={"Accept": "application/json"},
            timeout=10,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def query(self, table: str, query: str) -> list[dict[str, Any]]:
        resp = await self.http.get(
            f"/api/now/table/{table}",
            params={"sysparm_query": query, "sysparm_exclude_reference_link": "true"},
        )
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()["result"]
        return result

    async def incident(self, sys_id: str) -> dict[str, Any]:
        resp = await self.http.get(
            f"/api/now/table/incident/{sys_id}", params={"sysparm_exclude_reference_link": "true"}
        )
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()["result"]
        return result

    async def journal(self, sys_id: str) -> list[dict[str, Any]]:
        return await self.query("sys_journal_field", f"element_id={sys_id}^ORDERBYsys_created_on")

    async def update(self, sys_id: str, **fields: str) -> None:
        resp = await self.http.patch(f"/api/now/table/incident/{sys_id}", json=fields)
        resp.raise_for_status()

    async def configure_outbound(self, url: str, token: str) -> None:
        resp = await self.http.post(
            "/_sandbox/outbound",
            json={"url": url, "headers": {"X-Ticketbridge-Token": token}, "enabled": True},
        )
        resp.raise_for_status()
