"""The webhook endpoint in process: verification before storage, one hint per delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ticketbridge.config import load_config
from ticketbridge.daemon import Daemon
from ticketbridge.store import Store, repo
from ticketbridge.store.tables import inbox

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
TOKEN = "webhook-secret-0042"
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


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


class TestReadiness:
    async def test_dead_letters_make_readyz_degraded_with_the_count(self, daemon: Daemon):
        """/readyz is 200 with healthy polls and no dead letter; one dead-lettered write
        makes it 503 with the count, and the dead-letter gauge says the same."""
        for health in daemon.engine.health.values():
            health.ok = True
        transport = httpx.ASGITransport(app=daemon.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tb") as client:
            healthy = await client.get("/readyz")
            with daemon.store.tx() as c:
                link_id = repo.insert_link(
                    c,
                    connection="c",
                    psa_system="psa",
                    psa_ticket_id="1",
                    vendor_system="snow",
                    state="open",
                    origin="routed",
                    created_at=NOW,
                    updated_at=NOW,
                )
                repo.enqueue(
                    c,
                    link_id=link_id,
                    target_system="notify",
                    operation="notify",
                    key="dead-chat",
                    payload={},
                    now=NOW,
                )
                [row] = repo.claim_outbox(
                    c, NOW, limit=1, lease=timedelta(minutes=1), postgres=not daemon.store.is_sqlite
                )
                repo.outbox_dead(c, row.id, error="no teams URL", token=row.claim_token)
            degraded = await client.get("/readyz")
            metrics = (await client.get("/metrics")).text
        assert 200 == healthy.status_code
        assert 0 == healthy.json()["dead_letters"]
        assert 503 == degraded.status_code
        body = degraded.json()
        assert 1 == body["dead_letters"]
        assert any("1 dead-lettered" in reason for reason in body["degraded"])
        assert "ticketbridge_outbox_dead_letters 1.0" in metrics
