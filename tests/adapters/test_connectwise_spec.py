"""Product-specific (respx): every request ConnectWiseAdapter sends, and every canned answer, against the 2025.1 spec."""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import respx

from tests.adapters import cw_payloads as cw
from tests.contract.spec import CONNECTWISE, Contract, contract_for, router_calls
from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter
from ticketbridge.domain import FieldChange, NoteDraft, Visibility

pytestmark = [pytest.mark.contract, pytest.mark.anyio]

KEY = "0123456789abcdef"
STATUSES_REASON = CONNECTWISE.exclusions[0].reason


@pytest.fixture
def contract() -> Contract:
    return contract_for(CONNECTWISE)


@pytest.fixture
def api() -> respx.MockRouter:
    with respx.mock(base_url=cw.BASE_URL, assert_all_called=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[ConnectWiseAdapter]:
    adapter = cw.adapter()
    yield adapter
    await adapter.aclose()


def check(contract: Contract, router: respx.MockRouter):
    return contract.check(router_calls(router), base_url=cw.BASE_URL)


class TestReads:
    async def test_check(self, contract, api, adapter) -> None:
        """check() counts tickets."""
        api.get("/service/tickets/count").mock(return_value=cw.respond({"count": 42}))
        await adapter.check()
        report = check(contract, api)
        assert ([], ["GET /service/tickets/count -> 200"]) == (report.problems, report.checked)

    async def test_changed_tickets(self, contract, api, adapter) -> None:
        """The polling query, its pages and Link headers fit the spec."""
        path = "/service/tickets"
        api.get(path).mock(
            side_effect=[
                cw.respond(
                    [
                        cw.summary_row(1, "2025-03-01T10:00:00Z"),
                        cw.summary_row(2, "2025-03-01T10:00:00Z"),
                    ],
                    Link=cw.link_header(path, page=1, size=2, next_page=True, last=2),
                ),
                cw.respond(
                    [cw.summary_row(3, "2025-03-01T10:00:01Z")],
                    Link=cw.link_header(path, page=2, size=2, next_page=False, last=2),
                ),
            ]
        )
        await adapter.changed_tickets(datetime(2025, 3, 1, 10, tzinfo=UTC))
        report = check(contract, api)
        expected = ["GET /service/tickets -> 200", "GET /service/tickets -> 200"]
        assert ([], expected) == (report.problems, report.checked)

    async def test_get_ticket_and_notes(self, contract, api, adapter) -> None:
        """Reading a ticket (and its notes for the description) fits the spec."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(externalXRef="INC0010001"))
        )
        api.get("/service/tickets/4711/notes").mock(
            return_value=cw.respond(
                [
                    cw.note(1, "internal", internal=True),
                    cw.note(2, "first", discussion=True, resolution=True),
                ]
            )
        )
        await adapter.get_ticket("4711")
        report = check(contract, api)
        expected = ["GET /service/tickets/4711 -> 200", "GET /service/tickets/4711/notes -> 200"]
        assert ([], expected) == (report.problems, report.checked)

    async def test_find_ticket_not_found(self, contract, api, adapter) -> None:
        """The lookup request fits; the 404 answer is listed as not checkable."""
        api.get("/service/tickets/99").mock(
            return_value=cw.respond({"code": "NotFound", "message": "Ticket not found"}, 404)
        )
        await adapter.find_ticket("99")
        report = check(contract, api)
        expected = (
            [],
            [
                (
                    "GET /service/tickets/99 -> 404",
                    "the spec declares no 404 answer for this operation",
                )
            ],
        )
        assert expected == (report.problems, report.excluded)

    async def test_list_notes(self, contract, api, adapter) -> None:
        """allNotes pages (notes and time entries) fit the spec."""

        def entry(entry_id: int, note_type: str, **flags: bool) -> dict[str, object]:
            return {
                "id": entry_id,
                "noteType": note_type,
                "ticket": {"id": 4711, "summary": "Printer"},
                "text": "Checked the spooler.",
                "detailDescriptionFlag": flags.get("discussion", False),
                "internalAnalysisFlag": flags.get("internal", False),
                "resolutionFlag": flags.get("resolution", False),
                "member": {"id": 148, "identifier": "jsmith", "name": "John Smith"},
                "_info": {
                    "lastUpdated": "2025-03-01T09:30:00Z",
                    "dateEntered": "2025-03-01T09:30:00Z",
                },
            }

        api.get("/service/tickets/4711/allNotes").mock(
            side_effect=[
                cw.respond(
                    [
                        entry(1, "TicketNote", discussion=True),
                        entry(1, "TimeEntryNote", internal=True),
                    ]
                ),
                cw.respond([entry(3, "TicketNote", resolution=True)]),
            ]
        )
        await adapter.list_notes("4711")
        report = check(contract, api)
        assert ([], 2) == (report.problems, len(report.checked))


class TestWrites:
    @pytest.mark.parametrize("visibility", list(Visibility))
    async def test_add_note(self, contract, api, adapter, visibility: Visibility) -> None:
        """The ServiceNote body and the 201 answer fit the spec."""
        api.post("/service/tickets/4711/notes").mock(
            return_value=cw.respond(
                cw.note(
                    77,
                    "A note",
                    discussion=visibility is Visibility.PUBLIC,
                    internal=visibility is not Visibility.PUBLIC,
                ),
                201,
            )
        )
        await adapter.add_note("4711", NoteDraft("Hello", visibility), KEY)
        report = check(contract, api)
        expected = ([], ["POST /service/tickets/4711/notes -> 201"])
        assert expected == (report.problems, report.checked)

    async def test_update_status_priority_link(self, contract, api, adapter) -> None:
        """The PATCH array and the priority lookup fit; the board-status lookup is excluded."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        api.get("/service/boards/1/statuses").mock(
            return_value=cw.respond([cw.board_status(17, "In Progress")])
        )
        api.get("/service/priorities").mock(
            return_value=cw.respond([cw.priority(2, "Priority 2 - High")])
        )
        api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        change = FieldChange(status="In Progress", priority="Priority 2 - High", external_ref="X1")
        await adapter.update_ticket("4711", change)
        report = check(contract, api)
        expected = (
            [],
            [
                "GET /service/tickets/4711 -> 200",
                "GET /service/priorities -> 200",
                "PATCH /service/tickets/4711 -> 200",
            ],
            [("GET /service/boards/1/statuses", STATUSES_REASON)],
        )
        assert expected == (report.problems, report.checked, report.excluded)

    async def test_update_custom_field(self, contract, api) -> None:
        """Replacing the whole customFields array fits the spec."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        adapter = cw.adapter(link_field="custom:Vendor Ticket")
        try:
            await adapter.update_ticket("4711", FieldChange(external_ref="INC0010009"))
        finally:
            await adapter.aclose()
        report = check(contract, api)
        assert ([], 2) == (report.problems, len(report.checked))
