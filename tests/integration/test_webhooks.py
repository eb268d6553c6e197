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
from structlog.testing import capture_logs

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


CHUNK = 64 * 1024


class Upload:
    """The client side of one ASGI request: the body in chunks (no Content-Length, as a
    chunked upload), counting every byte the app pulled; optionally hanging up early."""

    def __init__(self, chunks: int, *, hang_up_after: int | None = None) -> None:
        self.left = chunks
        self.hang_up_after = hang_up_after
        self.sent = 0
        self.read = 0

    async def receive(self) -> dict[str, Any]:
        if self.hang_up_after is not None and self.sent >= self.hang_up_after:
            return {"type": "http.disconnect"}
        if self.left == 0:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.left -= 1
        self.sent += 1
        self.read += CHUNK
        return {"type": "http.request", "body": b"[" * CHUNK, "more_body": self.left > 0}


async def upload(app: Any, upload: Upload, headers: dict[str, str]) -> int:
    """POST ``upload`` to ``/webhooks/snow`` through ASGI; the response status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/snow",
        "raw_path": b"/webhooks/snow",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"transfer-encoding", b"chunked")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("tb", 80),
    }
    answer: dict[str, int] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    await app(scope, upload.receive, send)
    return answer.get("status", 0)


class TestBoundedIntake:
    async def test_a_chunked_upload_over_the_cap_is_refused_early(self, daemon: Daemon):
        """No Content-Length, 20 MB in 64 KiB chunks: 413 after reading at most the cap plus
        one chunk; the rest is never read."""
        cap = daemon.config.server.max_body
        body = Upload(20 * 1024 * 1024 // CHUNK)
        status = await upload(daemon.app, body, {"X-Ticketbridge-Token": TOKEN})
        assert (413, True) == (status, body.read <= cap + CHUNK)

    async def test_a_wrong_token_is_refused_before_the_body_is_read(self, daemon: Daemon):
        """A shared-token webhook without the token is refused with nothing of its body read."""
        body = Upload(20 * 1024 * 1024 // CHUNK)
        status = await upload(daemon.app, body, {"X-Ticketbridge-Token": "guess"})
        assert (401, 0) == (status, body.read)

    async def test_deeply_nested_json_is_a_400(self, daemon: Daemon):
        """100000 levels of nesting is a malformed body (400), not a 500 with a traceback."""
        nested = b"[" * 100_000 + b"]" * 100_000
        transport = httpx.ASGITransport(app=daemon.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tb") as client:
            answer = await client.post(
                "/webhooks/snow", content=nested, headers={"X-Ticketbridge-Token": TOKEN}
            )
        assert 400 == answer.status_code
        assert "nested" in answer.json()["error"]

    async def test_a_client_hanging_up_mid_upload_is_a_debug_line(self, daemon: Daemon):
        """The client disconnects after two chunks: no exception escapes the app, nothing is
        logged above debug, and the webhook counts as aborted."""
        with capture_logs() as logs:
            await upload(daemon.app, Upload(10, hang_up_after=2), {"X-Ticketbridge-Token": TOKEN})
        loud = [e for e in logs if e["log_level"] not in ("debug", "info")]
        assert [] == loud
        assert 'outcome="aborted",system="snow"} 1.0' in daemon.metrics.render().decode()


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
