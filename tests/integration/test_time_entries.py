"""ConnectWise time entries through the engine: a technician's time-entry note is a note like
any other (mirrored or withheld by policy, ledgered under an id of its own)."""

from __future__ import annotations

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
