"""An idle engine with many open links costs one listing read per system per poll cycle,
whatever the number of links (API calls counted by the simulators' request logs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.harness import Harness
from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import CW_PREFIX
from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter, ConnectWiseSettings
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings
from ticketbridge.sandbox import RequestLog
from ticketbridge.store import Store, bulk

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
FAST = RetrySettings(attempts=1, wait_min=0, wait_max=0)
LINKS = 2_000
CYCLES = 3


@pytest.fixture
async def on_simulators(store: Store) -> AsyncIterator[tuple[Harness, RequestLog, RequestLog]]:
    """The harness with ConnectWise as its PSA and ServiceNow as its vendor (in process)."""
    h = Harness.build(store)
    cw_app = connectwise.create_app(connectwise.ConnectWiseState(clock=h.clock.now))
    sn_app = servicenow.create_app(servicenow.ServiceNowState(clock=h.clock.now))
    psa = ConnectWiseAdapter(
        AdapterContext(
            "psa",
            f"http://cw.test{CW_PREFIX}",
            retry=FAST,
            transport=httpx.ASGITransport(app=cw_app),
        ),
        ConnectWiseSettings(
            company_id="msp",
            public_key="pub",
            private_key="priv",
            client_id="00000000-0000-0000-0000-000000000000",
        ),
    )
    vendor = ServiceNowAdapter(
        AdapterContext(
            "vendor", "http://sn.test", retry=FAST, transport=httpx.ASGITransport(app=sn_app)
        ),
        ServiceNowSettings(username="ticketbridge.integration", password="integration-pass"),
    )
    h.engine.adapters["psa"] = psa
    h.engine.adapters["vendor"] = vendor
    logs: tuple[Any, Any] = (cw_app.state.requests, sn_app.state.requests)
    try:
        yield h, logs[0], logs[1]
    finally:
        await psa.aclose()
        await vendor.aclose()


def add_open_links(store: Store, h: Harness, count: int) -> None:
    now = h.clock.now()
    with store.tx() as c:
        bulk.add_links(
            c,
            [
                {
                    "id": i,
                    "connection": "main",
                    "psa_system": "psa",
                    "psa_ticket_id": str(100_000 + i),
                    "vendor_system": "vendor",
                    "vendor_ticket_id": f"{i:032x}",
                    "state": "open",
                    "origin": "routed",
                    "company": "ACME",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, count + 1)
            ],
        )
        bulk.add_events(
            c,
            [
                {"link_id": i, "kind": "vendor_ticket_seen", "detail": {}, "recorded_at": now}
                for i in range(1, count + 1)
            ],
        )


async def test_an_idle_poll_cycle_reads_each_system_once_whatever_the_links(
    store: Store, on_simulators: tuple[Harness, RequestLog, RequestLog]
) -> None:
    h, cw_log, sn_log = on_simulators
    add_open_links(store, h, LINKS)
    await h.engine.poll("psa")  # the first polls set the cursors
    await h.engine.poll("vendor")
    h.clock.advance(60)
    cw_log.clear()
    sn_log.clear()
    for _ in range(CYCLES):
        assert await h.engine.poll("psa") == 0
        assert await h.engine.poll("vendor") == 0
        await h.engine.sla_sweep()
        await h.engine.rules_pass()
        h.clock.advance(1)
    # one listing read per system and cycle: nothing per link, no second page, no write
    assert cw_log.count() == CYCLES
    assert sn_log.count() == CYCLES
    assert cw_log.count(method="GET") == CYCLES
    assert sn_log.count(method="GET") == CYCLES
