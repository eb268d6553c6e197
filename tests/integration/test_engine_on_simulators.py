"""The engine with one side played by a product's simulator (in process): ConnectWise time
entries are notes like any other; notes written in one second cross in the order written."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.harness import Harness
from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.actor import CW_PREFIX, ConnectWiseActor
from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter, ConnectWiseSettings
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings
from ticketbridge.store import Store
from ticketbridge.store.tables import ledger

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
FAST = RetrySettings(attempts=1, wait_min=0, wait_max=0)


class InProcessActor(ConnectWiseActor):
    """The ConnectWise engineer, talking to the simulator in process."""

    def __init__(self, app: Any) -> None:
        super().__init__("http://cw.test")
        self.http = httpx.AsyncClient(
            base_url="http://cw.test" + CW_PREFIX,
            auth=self.http.auth,
            headers=self.http.headers,
            transport=httpx.ASGITransport(app=app),
        )


@pytest.fixture
async def psa_on_simulator(store: Store) -> AsyncIterator[tuple[Harness, InProcessActor]]:
    """The harness with its PSA side replaced by the ConnectWise simulator."""
    h = Harness.build(store)
    app = connectwise.create_app(connectwise.ConnectWiseState(clock=h.clock.now))
    adapter = ConnectWiseAdapter(
        AdapterContext(
            "psa", f"http://cw.test{CW_PREFIX}", retry=FAST, transport=httpx.ASGITransport(app=app)
        ),
        ConnectWiseSettings(
            company_id="msp",
            public_key="pub",
            private_key="priv",
            client_id="00000000-0000-0000-0000-000000000000",
        ),
    )
    h.engine.adapters["psa"] = adapter
    actor = InProcessActor(app)
    yield h, actor
    await actor.aclose()
    await adapter.aclose()


async def test_time_entry_notes_are_mirrored_by_policy_under_ids_of_their_own(
    store: Store, psa_on_simulator: tuple[Harness, InProcessActor]
) -> None:
    """A Discussion time entry reaches the vendor; an Internal one is withheld (default
    policy); a note and a time entry with the same number are two ledger entries."""
    h, engineer = psa_on_simulator
    ticket = await engineer.open_ticket(
        summary="Internet down",
        description="The main office lost its link.",
        board="Vendor Escalations",
        company="ACME",
        contact="Dana Whitfield",
        priority="Priority 1 - Emergency Response",
    )
    tid = ticket["id"]
    await h.settle()
    link = h.link()
    assert "open" == link.state
    h.clock.advance(60)
    note = await engineer.add_note(tid, "Client confirms the outage.", internal=False)
    shared = await engineer.add_time_entry(tid, "Rebooted the edge router on site.")
    internal = await engineer.add_time_entry(
        tid, "Billing dispute, do not share.", discussion=False, internal=True
    )
    await h.settle()

    vendor_texts = " ".join(n.text for n in h.vendor.world.notes[link.vendor_ticket_id])
    assert "Client confirms the outage." in vendor_texts
    assert "Rebooted the edge router on site." in vendor_texts
    assert "Billing dispute" not in vendor_texts
    with store.tx() as c:
        rows = c.execute(
            sa.select(ledger.c.source_note_id, ledger.c.state, ledger.c.reason).where(
                ledger.c.link_id == link.id
            )
        ).all()
    states = {row.source_note_id: (row.state, row.reason) for row in rows}
    assert ("done", None) == states[str(note["id"])]
    assert ("done", None) == states[f"time-{shared['id']}"]
    assert ("skipped", "internal") == states[f"time-{internal['id']}"]
    numbers = {note["id"], shared["id"], internal["id"]}
    assert len(numbers) < 3, "the simulator numbers time entries apart from notes"


STEPS = [f"Step {n:02d}" for n in range(20)]


def steps(texts: list[str]) -> list[str]:
    return [m.group() for m in (re.search(r"Step \d\d", t) for t in texts) if m]


async def test_same_second_psa_notes_reach_the_vendor_in_source_order(
    psa_on_simulator: tuple[Harness, InProcessActor],
) -> None:
    """Twenty notes an engineer writes within one second arrive at the vendor in order."""
    h, engineer = psa_on_simulator
    ticket = await engineer.open_ticket(
        summary="Internet down",
        description="The main office lost its link.",
        board="Vendor Escalations",
        company="ACME",
        contact="Dana Whitfield",
        priority="Priority 1 - Emergency Response",
    )
    await h.settle()
    h.clock.advance(60)
    for text in STEPS:
        await engineer.add_note(ticket["id"], text, internal=False)
    await h.settle(rounds=40)
    vendor_notes = h.vendor.world.notes[h.link().vendor_ticket_id]
    assert STEPS == steps([n.text for n in vendor_notes])


async def test_same_second_vendor_comments_reach_the_psa_in_source_order(store: Store) -> None:
    """Twenty comments a vendor agent writes within one second (journal entries with random
    sys_ids) arrive in the PSA in the order written."""
    h = Harness.build(store)
    app = servicenow.create_app(servicenow.ServiceNowState(clock=h.clock.now))
    adapter = ServiceNowAdapter(
        AdapterContext(
            "vendor", "http://sn.test", retry=FAST, transport=httpx.ASGITransport(app=app)
        ),
        ServiceNowSettings(username="ticketbridge.integration", password="integration-pass"),
    )
    h.engine.adapters["vendor"] = adapter
    try:
        t = h.psa_ticket()
        await h.settle()
        vid = h.link().vendor_ticket_id
        h.clock.advance(60)
        for text in STEPS:
            app.state.sandbox.add_comment(vid, text, user_name="beth.anglin")
        await h.settle(rounds=40)
    finally:
        await adapter.aclose()
    assert STEPS == steps([n.text for n in h.psa.world.notes[t.ref.id]])
