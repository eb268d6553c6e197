"""Closeout with the vendor side played by the ServiceNow simulator (in process): incidents
resolved and cancelled in ServiceNow's terms, an instance that silently drops the state
(the status does not stick: refused, naming the field), and the API calls of a closeout of
20 incidents counted at the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.harness import Harness
from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings
from ticketbridge.closeout import Closer, TicketState
from ticketbridge.store import Store, repo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
FAST = RetrySettings(attempts=1, wait_min=0, wait_max=0)


@pytest.fixture
async def on_servicenow(store: Store) -> AsyncIterator[tuple[Harness, Any]]:
    h = Harness.build(store)
    app = servicenow.create_app(servicenow.ServiceNowState(clock=h.clock.now))
    adapter = ServiceNowAdapter(
        AdapterContext(
            "vendor", "http://sn.test", retry=FAST, transport=httpx.ASGITransport(app=app)
        ),
        ServiceNowSettings(username="ticketbridge.integration", password="integration-pass"),
    )
    h.engine.adapters["vendor"] = adapter
    yield h, app
    await adapter.aclose()


def closer(h: Harness) -> Closer:
    async def sleep(seconds: float) -> None:
        h.clock.advance(seconds)

    return Closer(
        h.engine.config, h.store, h.engine.adapters, h.clock, h.engine.dispatch_once, sleep=sleep
    )


def incident(app: Any, sys_id: str) -> dict[str, Any]:
    return dict(app.state.sandbox.tables["incident"][sys_id])


def comments(app: Any, sys_id: str) -> list[str]:
    """The incident's customer-visible comments (journal entries of ``comments``)."""
    journal = app.state.sandbox.tables["sys_journal_field"]
    bucket = journal.buckets.get(sys_id.casefold(), {})
    return [str(r.get("value", "")) for r in bucket.values() if r.get("element") == "comments"]


async def open_incidents(h: Harness, count: int) -> list[Any]:
    tickets = [h.psa_ticket(f"Outage {n}") for n in range(count)]
    await h.settle(rounds=20)
    return tickets


async def test_incidents_are_resolved_or_cancelled(
    on_servicenow: tuple[Harness, Any],
) -> None:
    """Three incidents: one resolved (named to complete), two Canceled, each with one
    closing comment in ServiceNow's words; the closeout is done."""
    h, app = on_servicenow
    tickets = await open_incidents(h, 3)
    outcome = await closer(h).apply(
        "ACME", complete={tickets[0].ref.id}, client_name="Acme Dental", timeout=30, poll_every=0
    )
    assert outcome.done, outcome.closeout.reason
    states = {}
    for t in outcome.tickets:
        row = incident(app, str(t.link.vendor_ticket_id))
        states[t.link.psa_ticket_id] = row["state"]
        texts = comments(app, str(t.link.vendor_ticket_id))
        assert 1 == sum("Acme Dental has ended its service agreement" in c for c in texts)
    assert "6" == states[tickets[0].ref.id]  # Resolved
    assert {"8"} == {states[t.ref.id] for t in tickets[1:]}  # Canceled


async def test_a_state_the_instance_drops_is_refused_naming_it(
    on_servicenow: tuple[Harness, Any],
) -> None:
    """The instance answers 200 but drops ``state`` (an ACL): the write is not proven, the
    ticket is refused with the field named, and the closeout is not done."""
    h, app = on_servicenow
    await open_incidents(h, 3)
    with h.store.tx() as c:
        dropped = sorted(str(link.vendor_ticket_id) for link in repo.list_links(c))[1]
    app.state.faults.add(
        [
            {
                "method": "PATCH",
                "path": f"/incident/{dropped}",
                "action": "ignore_fields",
                "fields": ["state"],
                "count": None,
            }
        ]
    )
    outcome = await closer(h).apply("ACME", timeout=30, poll_every=0)
    assert not outcome.done
    refused = [t for t in outcome.tickets if t.outcome and t.outcome.state == "refused"]
    assert 1 == len(refused)
    assert dropped == refused[0].link.vendor_ticket_id
    assert "8" != incident(app, dropped)["state"]  # not Canceled: the state did not stick
    assert "state" in (refused[0].outcome.reason or "")  # type: ignore[union-attr]
    assert refused[0].psa_ticket in (outcome.closeout.reason or "")
    confirmed = [t for t in outcome.tickets if t.outcome and t.outcome.state == "confirmed"]
    assert 2 == len(confirmed)


async def test_twenty_incidents_cost_a_bounded_number_of_calls(
    on_servicenow: tuple[Harness, Any],
) -> None:
    """Closing out 20 linked incidents: every one confirmed, at most 5 vendor API calls per
    incident (counted by the simulator), none to the PSA."""
    h, app = on_servicenow
    await open_incidents(h, 20)
    log = app.state.requests
    log.clear()
    psa_calls = len(h.psa.world.calls)
    outcome = await closer(h).apply("ACME", timeout=60, poll_every=0)
    assert outcome.done, outcome.closeout.reason
    assert 20 == sum(1 for t in outcome.tickets if t.outcome and t.outcome.state == "confirmed")
    calls = log.count()
    assert calls <= 5 * 20, log.totals()
    assert psa_calls == len(h.psa.world.calls)
    assert TicketState.CONFIRMED.value == outcome.tickets[-1].outcome.state  # type: ignore[union-attr]
