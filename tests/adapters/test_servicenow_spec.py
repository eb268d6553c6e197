"""Product-specific (respx): every request ServiceNowAdapter sends, and every canned answer, against the Table API spec."""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import respx

from tests.adapters import sn_payloads as sn
from tests.contract.spec import SERVICENOW, Contract, contract_for, router_calls
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter
from ticketbridge.domain import FieldChange, NoteDraft, TicketDraft, Visibility
from ticketbridge.errors import AuthFailedError, NotFoundError

pytestmark = [pytest.mark.contract, pytest.mark.anyio]

KEY = "0123456789abcdef"
TICKET_PATH = f"{sn.TABLE}/{sn.SYS_ID}"


@pytest.fixture
def contract() -> Contract:
    return contract_for(SERVICENOW)


@pytest.fixture
def api() -> respx.MockRouter:
    with respx.mock(base_url=sn.BASE_URL, assert_all_called=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[ServiceNowAdapter]:
    adapter = sn.adapter()
    yield adapter
    await adapter.aclose()


def check(contract: Contract, router: respx.MockRouter):
    return contract.check(router_calls(router), base_url=sn.BASE_URL)


class TestReads:
    async def test_check(self, contract, api, adapter) -> None:
        """check() reads one sys_id."""
        api.get(sn.TABLE).mock(return_value=sn.result([{"sys_id": sn.SYS_ID}]))
        await adapter.check()
        report = check(contract, api)
        assert ([], ["GET /table/incident -> 200"]) == (report.problems, report.checked)

    async def test_changed_tickets(self, contract, api, adapter) -> None:
        """The polling query, its pages and headers fit the spec."""
        api.get(sn.TABLE).mock(
            side_effect=[
                sn.result(
                    [sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00")],
                    Link=sn.link_header(sn.TABLE, offset=0, limit=2, total=3),
                    **{"X-Total-Count": "3"},
                ),
                sn.result(
                    [sn.change_row(sn.sys_id(3), "2025-03-01 10:00:01")],
                    Link=sn.link_header(sn.TABLE, offset=2, limit=2, total=3),
                    **{"X-Total-Count": "3"},
                ),
            ]
        )
        await adapter.changed_tickets(datetime(2025, 3, 1, 10, tzinfo=UTC))
        report = check(contract, api)
        assert ([], 2) == (report.problems, len(report.checked))

    async def test_get_ticket(self, contract, api, adapter) -> None:
        """Reading an incident fits the spec."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        await adapter.get_ticket(sn.SYS_ID)
        report = check(contract, api)
        expected = ([], [f"GET /table/incident/{sn.SYS_ID} -> 200"])
        assert expected == (report.problems, report.checked)

    async def test_get_ticket_not_found(self, contract, api, adapter) -> None:
        """The 404 answer is declared by the spec and fits it."""
        api.get(TICKET_PATH).mock(
            return_value=sn.respond({"error": {"message": "No Record found", "detail": "x"}}, 404)
        )
        with pytest.raises(NotFoundError):
            await adapter.get_ticket(sn.SYS_ID)
        report = check(contract, api)
        expected = ([], [f"GET /table/incident/{sn.SYS_ID} -> 404"])
        assert expected == (report.problems, report.checked)

    async def test_unauthorized(self, contract, api, adapter) -> None:
        """The 401 answer is declared by the spec and fits it."""
        api.get(sn.TABLE).mock(
            return_value=sn.respond({"error": {"message": "User Not Authenticated"}}, 401)
        )
        with pytest.raises(AuthFailedError):
            await adapter.check()
        report = check(contract, api)
        assert ([], ["GET /table/incident -> 401"]) == (report.problems, report.checked)

    async def test_find_ticket(self, contract, api, adapter) -> None:
        """The number lookup fits the spec."""
        api.get(sn.TABLE).mock(return_value=sn.result([sn.incident()]))
        await adapter.find_ticket("INC0010002")
        assert [] == check(contract, api).problems

    async def test_list_notes(self, contract, api, adapter) -> None:
        """The journal query and its records fit the spec."""
        api.get(sn.JOURNAL).mock(
            return_value=sn.result(
                [
                    sn.journal(sn.sys_id(1), "a"),
                    sn.journal(sn.sys_id(2), "b", element="work_notes"),
                ],
                **{"X-Total-Count": "2"},
            )
        )
        api.get("/api/now/table/sys_user").mock(
            return_value=sn.result([{"user_name": "beth.anglin", "name": "Beth Anglin"}])
        )
        await adapter.list_notes(sn.SYS_ID)
        report = check(contract, api)
        expected = ["GET /table/sys_journal_field -> 200", "GET /table/sys_user -> 200"]
        assert ([], expected) == (report.problems, report.checked)


class TestWrites:
    @pytest.mark.parametrize("visibility", list(Visibility))
    async def test_add_note(self, contract, api, adapter, visibility: Visibility) -> None:
        """The journal PATCH (its answer asked back as proof) and the id lookup fit the spec."""
        api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        api.get(sn.JOURNAL).mock(return_value=sn.result([{"sys_id": sn.sys_id(9)}]))
        await adapter.add_note(sn.SYS_ID, NoteDraft("Hello", visibility), KEY)
        report = check(contract, api)
        expected = (
            [],
            [f"PATCH /table/incident/{sn.SYS_ID} -> 200", "GET /table/sys_journal_field -> 200"],
        )
        assert expected == (report.problems, report.checked)

    async def test_create_and_find_created(self, contract, api, adapter) -> None:
        """The create body, its 201 answer and the correlation lookup fit the spec."""
        api.post(sn.TABLE).mock(side_effect=sn.echo_write)
        api.get(sn.TABLE).mock(return_value=sn.result([]))
        draft = TicketDraft("Printer offline", "Details", priority="3", account={"company": "x"})
        await adapter.create_ticket(draft, KEY)
        await adapter.find_created(KEY)
        report = check(contract, api)
        expected = ([], ["POST /table/incident -> 201", "GET /table/incident -> 200"])
        assert expected == (report.problems, report.checked)

    async def test_update_ticket(self, contract, api, adapter) -> None:
        """Compare-before-write read and the state/impact/urgency PATCH fit the spec."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        await adapter.update_ticket(sn.SYS_ID, FieldChange(status="Resolved", priority="1"))
        report = check(contract, api)
        expected = (
            [],
            [
                f"GET /table/incident/{sn.SYS_ID} -> 200",
                f"PATCH /table/incident/{sn.SYS_ID} -> 200",
            ],
        )
        assert expected == (report.problems, report.checked)
