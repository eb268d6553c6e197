"""The daemon's admin listener: started beside the webhook port only with credentials,
behind its sign-in, with /metrics; webhooks seen on the public port show on its
Systems page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from tests.dashboard import seed
from ticketbridge.config import load_config
from ticketbridge.daemon import Daemon

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

BEARER = {"Authorization": f"Bearer {seed.TOKEN}"}


def _config(tmp_path: Path, *, admin: dict[str, Any], metrics: bool = True) -> Any:
    return load_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'tb.db'}"},
            "server": {"host": "127.0.0.1", "port": 0, "metrics": metrics},
            "admin": {"host": "127.0.0.1", "port": 0, **admin},
            "systems": {
                "psa": {
                    "kind": "fake",
                    "base_url": "http://psa.invalid",
                    "settings": {"webhook_secret": "hook-secret-0123456789"},
                },
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["V"]}}
            ],
        }
    )


@asynccontextmanager
async def running(config: Any) -> AsyncIterator[Daemon]:
    daemon = Daemon(config)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.wait_for(daemon.started.wait(), timeout=20)
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_admin_listener_with_a_token(tmp_path: Path):
    async with running(_config(tmp_path, admin={"token": seed.TOKEN}, metrics=False)) as daemon:
        assert daemon.admin_port is not None
        assert daemon.admin_port != daemon.port
        admin = f"http://127.0.0.1:{daemon.admin_port}"
        public = f"http://127.0.0.1:{daemon.port}"
        async with httpx.AsyncClient() as client:
            assert 401 == (await client.get(f"{admin}/metrics")).status_code
            assert 401 == (await client.get(f"{admin}/")).status_code
            metrics = await client.get(f"{admin}/metrics", headers=BEARER)
            assert 200 == metrics.status_code
            assert "ticketbridge_polls" in metrics.text
            # server.metrics: false keeps /metrics off the port the vendors reach
            assert 404 == (await client.get(f"{public}/metrics")).status_code
            refused = await client.post(f"{public}/webhooks/psa", content=b"{}")
            assert 401 == refused.status_code
            systems = await client.get(f"{admin}/health", headers=BEARER)
        assert 200 == systems.status_code
        assert "(unauthorized)" in systems.text
        assert "1 refused in a row" in systems.text


async def test_public_metrics_stay_by_default(tmp_path: Path):
    async with running(_config(tmp_path, admin={"token": seed.TOKEN})) as daemon:
        async with httpx.AsyncClient() as client:
            public = await client.get(f"http://127.0.0.1:{daemon.port}/metrics")
        assert 200 == public.status_code


async def test_no_credentials_no_listener(tmp_path: Path):
    """Never open by default: without credentials the admin listener does not start, and
    the log says why."""
    with capture_logs() as logs:
        async with running(_config(tmp_path, admin={})) as daemon:
            assert daemon.admin_port is None
            assert daemon.port is not None
    (line,) = [e for e in logs if e["event"] == "admin_not_started"]
    assert "no credentials configured" == line["reason"]
