"""The adapters' writes against the simulators, in process: what rules' actions rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter, ConnectWiseSettings
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings
from ticketbridge.domain import FieldChange, TicketDraft
from ticketbridge.errors import PermanentError

pytestmark = pytest.mark.anyio
FAST = RetrySettings(attempts=1, wait_min=0, wait_max=0)


@pytest.fixture
async def cw() -> AsyncIterator[tuple[ConnectWiseAdapter, object]]:
    app = connectwise.create_app()
    adapter = ConnectWiseAdapter(
        AdapterContext(
            "cw",
            "http://cw.test/v4_6_release/apis/3.0",
            retry=FAST,
            transport=httpx.ASGITransport(app=app),
        ),
        ConnectWiseSettings(
            company_id="msp",
            public_key="pub",
            private_key="priv",
            client_id="00000000-0000-0000-0000-000000000000",
        ),
    )
    yield adapter, app.state.sandbox, app.state.requests
    await adapter.aclose()


@pytest.fixture
async def sn() -> AsyncIterator[tuple[ServiceNowAdapter, object]]:
    app = servicenow.create_app()
    adapter = ServiceNowAdapter(
        AdapterContext("sn", "http://sn.test", retry=FAST, transport=httpx.ASGITransport(app=app)),
        ServiceNowSettings(username="ticketbridge.integration", password="integration-pass"),
    )
    yield adapter, app.state.sandbox
    await adapter.aclose()


class TestConnectWiseMoves:
    async def test_tier_move_sets_board_status_and_owner(self, cw):
        """Moving a ticket to another board with a status and an owner lands in one PATCH,
        and asking again changes nothing."""
        adapter, state, requests = cw
        raw = state.create_ticket(
            {
                "summary": "Printer jam",
                "company": {"identifier": "ACME"},
                "board": {"name": "Service Desk"},
            }
        )
        tid = str(raw["id"])
        change = FieldChange(queue="Vendor Escalations", status="In Progress", assignee="adavis")
        await adapter.update_ticket(tid, change)
        ticket = await adapter.get_ticket(tid)
        assert ("Vendor Escalations", "In Progress", "adavis") == (
            ticket.queue,
            ticket.status,
            ticket.assignee,
        )
        patches = requests.count("PATCH")
        await adapter.update_ticket(tid, change)
        assert patches == requests.count("PATCH")

    async def test_unknown_board_is_a_permanent_error(self, cw):
        """A board that does not exist is refused, not retried forever."""
        adapter, state, _ = cw
        raw = state.create_ticket({"summary": "x", "company": {"identifier": "ACME"}})
        with pytest.raises(PermanentError, match="board"):
            await adapter.update_ticket(str(raw["id"]), FieldChange(queue="Tier 9"))


class TestServiceNowFields:
    async def test_escalation_field_and_priority(self, sn):
        """A rule raising the vendor's priority and escalation flag sets impact/urgency and the
        escalation field of the incident."""
        adapter, state = sn
        ref = await adapter.create_ticket(TicketDraft("Outage", "d", priority="3"), "k" * 16)
        await adapter.update_ticket(ref.id, FieldChange(priority="1", fields={"escalation": "2"}))
        record = state.get("incident", ref.id)
        assert ("1", "2") == (record["priority"], record["escalation"])

    async def test_protected_fields_refused(self, sn):
        """Fields ticketbridge relies on cannot be overwritten by a rule."""
        adapter, _ = sn
        ref = await adapter.create_ticket(TicketDraft("Outage", "d"), "j" * 16)
        with pytest.raises(PermanentError, match="may not be set"):
            await adapter.update_ticket(ref.id, FieldChange(fields={"correlation_id": "x"}))


class TestConnectWiseTeams:
    async def test_team_move_within_the_board(self, cw):
        """Moving a ticket to a tier's team looks the team up on its board and sets it."""
        adapter, state, _ = cw
        raw = state.create_ticket(
            {
                "summary": "Server slow",
                "company": {"identifier": "ACME"},
                "board": {"name": "Service Desk"},
            }
        )
        tid = str(raw["id"])
        await adapter.update_ticket(tid, FieldChange(group="Tier 2"))
        assert (await adapter.get_ticket(tid)).group == "Tier 2"
        with pytest.raises(PermanentError, match="team"):
            await adapter.update_ticket(tid, FieldChange(group="Tier 9"))


class TestConnectWiseCustomFields:
    async def test_custom_field_tag_by_caption(self, cw):
        """A breach tag lands in the custom field with that caption, the whole array sent back
        as ConnectWise requires; other field names are refused."""
        adapter, state, _ = cw
        raw = state.create_ticket({"summary": "x", "company": {"identifier": "ACME"}})
        tid = str(raw["id"])
        await adapter.update_ticket(tid, FieldChange(fields={"custom:Vendor Name": "Breached"}))
        fields = {f["caption"]: f.get("value") for f in state.get_ticket(int(tid))["customFields"]}
        assert fields["Vendor Name"] == "Breached"
        with pytest.raises(PermanentError, match="custom:<caption>"):
            await adapter.update_ticket(tid, FieldChange(fields={"summary": "nope"}))
