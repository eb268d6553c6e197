"""The adapter kit through each product's simulator: paging while records change, and the
request budget against the simulator's own request log."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ticketbridge.adapters.base import AdapterContext, TicketAdapter
from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter, ConnectWiseSettings
from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings

pytestmark = pytest.mark.anyio
FAST = RetrySettings(attempts=1, wait_min=0, wait_max=0)
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The simulator's wall clock and the budget's monotonic clock, moved by hand or by sleeping."""

    def __init__(self) -> None:
        self.at = T0
        self.sleeps = 0

    def wall(self) -> datetime:
        return self.at

    def mono(self) -> float:
        return (self.at - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.at += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class Hooked(httpx.AsyncBaseTransport):
    """A transport that notes when each request went out and runs a hook after the n-th list read."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Clock, list_path: str) -> None:
        self.inner = inner
        self.clock = clock
        self.list_path = list_path
        self.sent: list[float] = []
        self.list_reads = 0
        self.after_list_read: dict[int, Callable[[], None]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(self.clock.mono())
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith(self.list_path):
            self.list_reads += 1
            hook = self.after_list_read.get(self.list_reads)
            if hook is not None:
                hook()
        return response


def cw_setup(clock: Clock, budget: RequestBudget | None = None) -> tuple[Any, Any, Hooked]:
    state = connectwise.ConnectWiseState(clock=clock.wall)
    app = connectwise.create_app(state)
    transport = Hooked(httpx.ASGITransport(app=app), clock, "/service/tickets")
    adapter = ConnectWiseAdapter(
        AdapterContext(
            "cw",
            "http://cw.test/v4_6_release/apis/3.0",
            retry=FAST,
            transport=transport,
            budget=budget,
        ),
        ConnectWiseSettings(
            company_id="msp",
            public_key="pub",
            private_key="priv",
            client_id="00000000-0000-0000-0000-000000000000",
            page_size=2,
        ),
    )
    return adapter, app, transport


def sn_setup(clock: Clock, budget: RequestBudget | None = None) -> tuple[Any, Any, Hooked]:
    state = servicenow.ServiceNowState(clock=clock.wall)
    app = servicenow.create_app(state)
    transport = Hooked(httpx.ASGITransport(app=app), clock, "/api/now/table/incident")
    adapter = ServiceNowAdapter(
        AdapterContext("sn", "http://sn.test", retry=FAST, transport=transport, budget=budget),
        ServiceNowSettings(
            username="ticketbridge.integration",
            password="integration-pass",
            page_size=2,
            poll_query="",  # people open these incidents: list them all
        ),
    )
    return adapter, app, transport


def cw_new(app: Any, clock: Clock, n: int) -> str:
    clock.at += timedelta(seconds=1)
    raw = app.state.sandbox.create_ticket(
        {
            "summary": f"ticket {n}",
            "company": {"identifier": "ACME"},
            "board": {"name": "Service Desk"},
        }
    )
    return str(raw["id"])


def cw_touch(app: Any, clock: Clock, ticket_id: str) -> None:
    clock.at += timedelta(seconds=30)
    app.state.sandbox.patch_ticket(
        int(ticket_id), [{"op": "replace", "path": "summary", "value": "changed while paging"}]
    )


def sn_new(app: Any, clock: Clock, n: int) -> str:
    clock.at += timedelta(seconds=1)
    record = app.state.sandbox.insert(
        "incident", {"short_description": f"ticket {n}"}, user_name="admin"
    )
    return str(record["sys_id"])


def sn_touch(app: Any, clock: Clock, sys_id: str) -> None:
    clock.at += timedelta(seconds=30)
    app.state.sandbox.update(
        "incident", sys_id, {"short_description": "changed while paging"}, user_name="admin"
    )


PRODUCTS = [
    pytest.param((cw_setup, cw_new, cw_touch), id="connectwise"),
    pytest.param((sn_setup, sn_new, sn_touch), id="servicenow"),
]


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("moved", [0, 2], ids=["read-page", "next-page"])
async def test_record_updated_between_page_reads_is_not_skipped(product: Any, moved: int) -> None:
    """Five tickets, two per page; one is updated right after page 1 is read.

    Updating the first ticket (on page 1, already read) pulls the third onto page 1;
    updating the third (on page 2) moves it to the end.  Either way every ticket is
    reported once, the updated one at its new time.
    """
    setup, new, touch = product
    clock = Clock()
    adapter, app, transport = setup(clock)
    try:
        since = clock.at + timedelta(seconds=1)
        ids = [new(app, clock, n) for n in range(5)]
        transport.after_list_read[1] = lambda: touch(app, clock, ids[moved])
        changes = await adapter.changed_tickets(since)
    finally:
        await adapter.aclose()
    assert sorted(ids) == sorted(c.ticket_id for c in changes)
    assert ids[moved] == changes[-1].ticket_id
    assert clock.at == changes[-1].updated_at


@pytest.mark.parametrize("product", PRODUCTS)
async def test_request_budget_never_exceeded(product: Any) -> None:
    """A 3-per-10s budget: no 10 s window of the simulator's requests holds more than 3."""
    setup, new, _ = product
    clock = Clock()
    budget = RequestBudget(3, 10.0, clock=clock.mono, sleep=clock.sleep)
    adapter: TicketAdapter
    adapter, app, transport = setup(clock, budget)
    try:
        since = clock.at + timedelta(seconds=1)
        ids = [new(app, clock, n) for n in range(5)]
        start = clock.mono()
        await adapter.changed_tickets(since)
        for ticket_id in ids:
            await adapter.get_ticket(ticket_id)
    finally:
        await adapter.aclose()
    sent = sorted(t for t in transport.sent if t >= start)
    assert len(app.state.requests.items()) == len(transport.sent)
    most = max(bisect.bisect_left(sent, t + 10.0) - i for i, t in enumerate(sent))
    assert 3 == most
    assert clock.sleeps > 0


# -- ServiceNow: a restricted integration user's poll ------------------------------------------
def _restricted_instance(clock: Clock, unrelated: int) -> tuple[Any, list[str], Hooked]:
    """An instance with ``unrelated`` incidents people opened and three ticketbridge opened;
    the integration user may read only ticketbridge's (a read ACL, applied after
    ``sysparm_limit`` as on a real instance)."""
    state = servicenow.ServiceNowState(clock=clock.wall)
    app = servicenow.create_app(state)
    for n in range(unrelated):
        state.insert("incident", {"short_description": f"other {n}"}, user_name="admin")
    ours = [
        state.insert(
            "incident",
            {"short_description": f"ours {n}", "correlation_display": "ticketbridge"},
            user_name="ticketbridge.integration",
        )["sys_id"]
        for n in range(3)
    ]
    state.restrict_reads("ticketbridge.integration", "incident", "correlation_display=ticketbridge")
    return app, ours, Hooked(httpx.ASGITransport(app=app), clock, "/api/now/table/incident")


def _sn_adapter(transport: Hooked, **settings: Any) -> ServiceNowAdapter:
    return ServiceNowAdapter(
        AdapterContext("sn", "http://sn.test", retry=FAST, transport=transport),
        ServiceNowSettings(
            username="ticketbridge.integration", password="integration-pass", **settings
        ),
    )


async def test_a_scoped_poll_reads_only_correlated_incidents_in_one_or_two_requests() -> None:
    """500 incidents the integration user may not read and 3 ticketbridge opened: the poll
    asks for ticketbridge's only (correlation_display) and is done in at most 2 requests;
    listing every incident instead walks pages the ACL leaves short or empty."""
    clock = Clock()
    _, ours, transport = _restricted_instance(clock, 500)
    scoped = _sn_adapter(transport)
    try:
        changes = await scoped.changed_tickets(T0)
    finally:
        await scoped.aclose()
    assert (sorted(ours), True) == (sorted(c.ticket_id for c in changes), transport.list_reads <= 2)

    clock = Clock()
    _, ours, transport = _restricted_instance(clock, 500)
    unscoped = _sn_adapter(transport, poll_query="")
    try:
        everything = await unscoped.changed_tickets(T0)
    finally:
        await unscoped.aclose()
    assert sorted(ours) == sorted(c.ticket_id for c in everything)
    assert transport.list_reads > 5, "the ACL leaves pages short or empty, and they are walked"


async def test_the_simulator_applies_read_acls_after_the_limit() -> None:
    """A restricted user's page is cut after sysparm_limit: short or empty, while
    X-Total-Count and Link still count every row; a hidden record reads as not found."""
    clock = Clock()
    app, ours, _ = _restricted_instance(clock, 10)
    auth = ("ticketbridge.integration", "integration-pass")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sn.test", auth=auth
    ) as http:
        first = await http.get("/api/now/table/incident", params={"sysparm_limit": 5})
        last = await http.get(
            "/api/now/table/incident", params={"sysparm_limit": 5, "sysparm_offset": 10}
        )
        hidden = first.headers["x-total-count"]
        other = app.state.sandbox.query("incident", "short_description=other 0")[0]["sys_id"]
        one = await http.get(f"/api/now/table/incident/{other}")
    assert ([], "13", True) == (first.json()["result"], hidden, "next" in first.links)
    assert sorted(ours) == sorted(r["sys_id"] for r in last.json()["result"])
    assert 404 == one.status_code
