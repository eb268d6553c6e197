"""The webhook endpoint in process: verification before storage, one hint per delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ticketbridge.config import load_config
from ticketbridge.daemon import Daemon
from ticketbridge.store import Store
from ticketbridge.store.tables import inbox

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
TOKEN = "webhook-secret-0042"


@pytest.fixture
async def daemon(store_url: str) -> AsyncIterator[Daemon]:
    Store(store_url).upgrade()
    config = load_config(
        {
            "store": {"url": store_url},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "snow": {
                    "kind": "servicenow",
                    "base_url": "https://acme.service-now.com",
                    "settings": {"username": "u", "password": "p", "webhook_token": TOKEN},
                },
            },
            "connections": [
                {
                    "name": "c",
                    "psa": "psa",
                    "vendor": "snow",
                    "routing": {"queues": ["B"]},
                    "status_map": {
                        "vendor_to_psa": dict.fromkeys(
                            ["New", "In Progress", "On Hold", "Resolved", "Closed", "Canceled"]
                        )
                    },
                }
            ],
        }
    )
    d = Daemon(config)
    yield d
    d.store.close()


def post(client: httpx.AsyncClient, body: dict[str, Any], token: str | None = TOKEN) -> Any:
    headers = {"X-Ticketbridge-Token": token} if token else {}
    return client.post("/webhooks/snow", content=json.dumps(body).encode(), headers=headers)


class TestWebhookIntake:
    async def test_same_delivery_five_times_at_once_is_one_hint(self, daemon: Daemon):
        """Five concurrent copies of one delivery store one hint; every copy gets a 2xx."""
        body = {"table": "incident", "sys_id": "a" * 32, "sys_mod_count": "3"}
        transport = httpx.ASGITransport(app=daemon.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tb") as client:
            answers = await asyncio.gather(*(post(client, body) for _ in range(5)))
        assert [r.status_code for r in answers] == [202] * 5
        assert sum(r.json()["accepted"] for r in answers) == 1
        with daemon.store.tx() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == 1

    async def test_refused_webhooks_store_nothing(self, daemon: Daemon):
        """A missing or wrong token, or a malformed body, is refused and nothing is stored."""
        transport = httpx.ASGITransport(app=daemon.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tb") as client:
            body = {"table": "incident", "sys_id": "b" * 32}
            missing = await post(client, body, token=None)
            wrong = await post(client, body, token="guess")
            bad = await client.post(
                "/webhooks/snow", content=b"{nope", headers={"X-Ticketbridge-Token": TOKEN}
            )
            odd = await post(client, {"table": "incident", "sys_id": "../../etc"})
        assert [missing.status_code, wrong.status_code, bad.status_code, odd.status_code] == [
            401,
            401,
            400,
            400,
        ]
        with daemon.store.tx() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == 0
