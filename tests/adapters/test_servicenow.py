"""ServiceNowAdapter against respx-mocked Table API answers."""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError

from ticketbridge.adapters import adapter_class
from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow.adapter import (
    TICKET_FIELDS,
    ServiceNowAdapter,
    ServiceNowSettings,
)
from ticketbridge.domain import (
    FieldChange,
    Note,
    NoteDraft,
    Side,
    StatusClass,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketRef,
    Visibility,
    WebhookHint,
    WebhookRequest,
    marker_for,
)
from ticketbridge.errors import (
    AuthFailedError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
    WebhookAuthError,
    WebhookPayloadError,
)

from . import sn_payloads as sn

pytestmark = pytest.mark.anyio

KEY = "0123456789abcdef"
MARKER = marker_for(KEY, "a marker secret, 32 characters", "sn", sn.SYS_ID)
TICKET_PATH = f"{sn.TABLE}/{sn.SYS_ID}"


@pytest.fixture
def api() -> respx.MockRouter:
    with respx.mock(base_url=sn.BASE_URL, assert_all_called=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[ServiceNowAdapter]:
    adapter = sn.adapter()
    yield adapter
    await adapter.aclose()


def params_of(route: respx.Route, index: int = -1) -> dict[str, str]:
    return dict(route.calls[index].request.url.params)


class TestRegistration:
    def test_registry_finds_the_adapter(self) -> None:
        """The built-in registry resolves kind "servicenow" to this class."""
        assert ServiceNowAdapter is adapter_class("servicenow")

    def test_class_attributes(self) -> None:
        """A vendor-side adapter with ServiceNow's fixed incident states."""
        expected = (
            "servicenow",
            "ServiceNow",
            frozenset({Side.VENDOR}),
            ("New", "In Progress", "On Hold", "Resolved", "Closed", "Canceled"),
            StatusClass.WAITING_ON_CUSTOMER,
        )
        actual = (
            ServiceNowAdapter.kind,
            ServiceNowAdapter.display_name,
            ServiceNowAdapter.sides,
            ServiceNowAdapter.known_statuses,
            ServiceNowAdapter.status_classes["On Hold/Awaiting Caller"],
        )
        assert expected == actual


class TestSettings:
    def test_defaults(self) -> None:
        """table incident, no webhook token, X-Ticketbridge-Token header, page_size 100."""
        s = ServiceNowSettings(username="u", password="p")
        expected = ("incident", None, "X-Ticketbridge-Token", 100)
        assert expected == (s.table, s.webhook_token, s.webhook_header, s.page_size)

    @pytest.mark.parametrize("table", ["Incident", "incident^x", "", "inc/ident"])
    def test_bad_table(self, table: str) -> None:
        """The table must be a plain table name (it goes into URLs and queries)."""
        with pytest.raises(ValidationError):
            sn.settings(table=table)

    def test_bad_header_name(self) -> None:
        """The webhook header must be a valid header name."""
        with pytest.raises(ValidationError):
            sn.settings(webhook_header="X Token")


class TestRequests:
    async def test_basic_auth_and_accept(self, api, adapter) -> None:
        """Every call carries Basic auth and asks for JSON."""
        route = api.get(sn.TABLE).mock(return_value=sn.result([]))
        await adapter.check()
        request = route.calls.last.request
        token = base64.b64encode(f"{sn.USERNAME}:{sn.PASSWORD}".encode()).decode()
        expected = (f"Basic {token}", "application/json")
        assert expected == (request.headers["authorization"], request.headers["accept"])

    async def test_base_url_with_api_root(self, api) -> None:
        """A base URL already ending in /api/now is not doubled."""
        route = api.get(sn.TABLE).mock(return_value=sn.result([]))
        adapter = sn.adapter(base_url=f"{sn.BASE_URL}/api/now/")
        try:
            await adapter.check()
        finally:
            await adapter.aclose()
        assert sn.TABLE == route.calls.last.request.url.path


class TestChangedTickets:
    async def test_query_and_params(self, api, adapter) -> None:
        """The cursor is an inclusive UTC sys_updated_on query on the records ticketbridge
        opened, in keyset order, actual values; whole tickets (not read again)."""
        route = api.get(sn.TABLE).mock(return_value=sn.result([], **{"X-Total-Count": "0"}))
        since = datetime(2025, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=2)))
        await adapter.changed_tickets(since)
        expected = {
            "sysparm_query": "correlation_display=ticketbridge"
            "^sys_updated_on>=2025-03-01 10:30:05^ORDERBYsys_updated_on^ORDERBYsys_id",
            "sysparm_fields": TICKET_FIELDS,
            "sysparm_limit": "2",
            "sysparm_offset": "0",
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        assert expected == params_of(route)

    async def test_first_sync_orders_only(self, api, adapter) -> None:
        """since=None has no time condition."""
        route = api.get(sn.TABLE).mock(return_value=sn.result([], **{"X-Total-Count": "0"}))
        await adapter.changed_tickets(None)
        expected = "correlation_display=ticketbridge^ORDERBYsys_updated_on^ORDERBYsys_id"
        assert expected == params_of(route)["sysparm_query"]

    async def test_configured_poll_query_scopes_every_or_group(self, api) -> None:
        """A configured encoded query replaces the default scope; each of its ^NQ groups
        gets the time condition; an empty one lists every record."""
        route = api.get(sn.TABLE).mock(return_value=sn.result([], **{"X-Total-Count": "0"}))
        since = datetime(2025, 3, 1, 10, tzinfo=UTC)
        scoped = sn.adapter(poll_query="assignment_group=abc^NQcorrelation_display=ticketbridge")
        unscoped = sn.adapter(poll_query="")
        try:
            await scoped.changed_tickets(since)
            first = params_of(route)["sysparm_query"]
            await unscoped.changed_tickets(since)
            second = params_of(route)["sysparm_query"]
        finally:
            await scoped.aclose()
            await unscoped.aclose()
        cond = "sys_updated_on>=2025-03-01 10:00:00"
        assert (
            (
                f"assignment_group=abc^{cond}^NQcorrelation_display=ticketbridge^{cond}"
                "^ORDERBYsys_updated_on^ORDERBYsys_id"
            ),
            f"{cond}^ORDERBYsys_updated_on^ORDERBYsys_id",
        ) == (first, second)

    async def test_poll_query_refuses_ordering(self) -> None:
        """The poll's order is the adapter's keyset: a configured ORDERBY is refused."""
        with pytest.raises(ValueError, match="ORDERBY"):
            sn.adapter(poll_query="active=true^ORDERBYnumber")

    async def test_short_and_empty_pages_do_not_end_paging(self, api, adapter) -> None:
        """Pages cut short by ACLs (even empty) are followed while Link has rel=next: after
        a row, from that row's keyset; after an empty page, by offset from the same one."""
        total = 6
        route = api.get(sn.TABLE).mock(
            side_effect=[
                sn.result(
                    [sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00")],
                    Link=sn.link_header(sn.TABLE, offset=0, limit=2, total=total),
                ),
                sn.result([], Link=sn.link_header(sn.TABLE, offset=2, limit=2, total=total)),
                sn.result(
                    [
                        sn.change_row(sn.sys_id(5), "2025-03-01 10:00:00"),
                        sn.change_row(sn.sys_id(6), "2025-03-01 10:00:01"),
                    ],
                    Link=sn.link_header(sn.TABLE, offset=4, limit=2, total=total),
                ),
            ]
        )
        changes = await adapter.changed_tickets(None)
        same_second = datetime(2025, 3, 1, 10, tzinfo=UTC)
        expected = (
            [
                TicketChange(sn.sys_id(1), same_second),
                TicketChange(sn.sys_id(5), same_second),
                TicketChange(sn.sys_id(6), datetime(2025, 3, 1, 10, 0, 1, tzinfo=UTC)),
            ],
            ["0", "0", "2"],
        )
        offsets = [c.request.url.params["sysparm_offset"] for c in route.calls]
        assert expected == (changes, offsets)
        queries = [c.request.url.params["sysparm_query"] for c in route.calls]
        assert f"sys_id>{sn.sys_id(1)}" in queries[1]
        assert queries[1] == queries[2]

    async def test_total_count_without_link(self, api, adapter) -> None:
        """Without Link, X-Total-Count decides whether more pages follow."""
        route = api.get(sn.TABLE).mock(
            side_effect=[
                sn.result(
                    [sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00")], **{"X-Total-Count": "3"}
                ),
                sn.result(
                    [sn.change_row(sn.sys_id(3), "2025-03-01 10:00:02")], **{"X-Total-Count": "1"}
                ),
            ]
        )
        changes = await adapter.changed_tickets(None)
        assert (2, 2) == (len(changes), route.call_count)

    async def test_no_headers_short_page_ends(self, api, adapter) -> None:
        """With neither Link nor X-Total-Count, a short page is the last."""
        route = api.get(sn.TABLE).mock(
            return_value=sn.result([sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00")])
        )
        await adapter.changed_tickets(None)
        assert 1 == route.call_count

    async def test_no_headers_full_page_continues(self, api, adapter) -> None:
        """With neither Link nor X-Total-Count, a full page asks for the next one."""
        route = api.get(sn.TABLE).mock(
            side_effect=[
                sn.result(
                    [
                        sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00"),
                        sn.change_row(sn.sys_id(2), "2025-03-01 10:00:00"),
                    ]
                ),
                sn.result([]),
            ]
        )
        await adapter.changed_tickets(None)
        assert 2 == route.call_count

    async def test_a_row_updated_while_paging_is_read_behind_the_cursor(self, api, adapter) -> None:
        """Keyset paging: the next page starts after the last row read, so a row updated
        during the walk is read again at its new time and reported once, at its latest."""
        route = api.get(sn.TABLE).mock(
            side_effect=[
                sn.result(
                    [
                        sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00"),
                        sn.change_row(sn.sys_id(2), "2025-03-01 10:00:01"),
                    ],
                    **{"X-Total-Count": "3"},
                ),
                sn.result(
                    [sn.change_row(sn.sys_id(1), "2025-03-01 10:00:09")], **{"X-Total-Count": "1"}
                ),
            ]
        )
        changes = await adapter.changed_tickets(None)
        expected = [
            TicketChange(sn.sys_id(2), datetime(2025, 3, 1, 10, 0, 1, tzinfo=UTC)),
            TicketChange(sn.sys_id(1), datetime(2025, 3, 1, 10, 0, 9, tzinfo=UTC)),
        ]
        query = route.calls[1].request.url.params["sysparm_query"]
        keyset = (
            "correlation_display=ticketbridge^sys_updated_on>2025-03-01 10:00:01"
            "^NQcorrelation_display=ticketbridge^sys_updated_on=2025-03-01 10:00:01"
            f"^sys_id>{sn.sys_id(2)}^ORDERBYsys_updated_on^ORDERBYsys_id"
        )
        assert (expected, keyset) == (changes, query)

    async def test_listing_carries_the_version_and_knows_our_own(self, api, adapter) -> None:
        """Each listed change carries sys_mod_count as its version; a listing made while our
        notes to the record went on shows one of our versions before the latest: that is
        our own write too (nothing to read), a version after ours is not."""
        counts = iter(range(5, 9))

        def answer(request: httpx.Request) -> httpx.Response:
            text = json.loads(request.content)["comments"]
            dump = f"2025-03-01 10:00:00 - Integration (Additional comments)\n{text}\n\n"
            return sn.result(
                {
                    "sys_id": sn.SYS_ID,
                    "sys_mod_count": str(next(counts)),
                    "state": "On Hold",
                    "comments": dump,
                }
            )

        api.patch(TICKET_PATH).mock(side_effect=answer)
        adapter.handled(Ticket(TicketRef("vendor", sn.SYS_ID), "x", fields={"sys_mod_count": "4"}))
        for n in range(4):  # versions 5..8
            await adapter.add_note(sn.SYS_ID, NoteDraft(f"Note {n}", Visibility.PUBLIC), KEY)
            if n == 0:  # the first note's version is read (no answer of ours came before it)
                adapter.handled(
                    Ticket(TicketRef("vendor", sn.SYS_ID), "x", fields={"sys_mod_count": "5"})
                )

        def listed(count: int) -> dict[str, Any]:
            row = sn.incident()
            row.update(sys_id=sn.SYS_ID, sys_mod_count=str(count))
            row["sys_updated_on"] = "2025-03-01 10:00:00"
            return row

        seen = []
        for count in (5, 7, 8, 9):
            api.get(sn.TABLE).mock(
                return_value=sn.result([listed(count)], **{"X-Total-Count": "1"})
            )
            (change,) = await adapter.changed_tickets(None)
            seen.append((change.version, change.own_write))
        assert [("5", False), ("7", True), ("8", True), ("9", False)] == seen

    async def test_repeated_page_is_transient(self, api, adapter) -> None:
        """An instance ignoring sysparm_offset is an error, not an endless loop."""
        rows = [
            sn.change_row(sn.sys_id(1), "2025-03-01 10:00:00"),
            sn.change_row(sn.sys_id(2), "2025-03-01 10:00:00"),
        ]
        api.get(sn.TABLE).mock(return_value=sn.result(rows, **{"X-Total-Count": "10"}))
        with pytest.raises(TransientError, match="repeats"):
            await adapter.changed_tickets(None)

    async def test_missing_result_is_transient(self, api, adapter) -> None:
        """A body without "result" is a shape error naming $.result."""
        api.get(sn.TABLE).mock(return_value=sn.respond({"records": []}))
        with pytest.raises(TransientError, match=r"\$\.result is missing"):
            await adapter.changed_tickets(None)

    async def test_garbage_json_is_transient(self, api, adapter) -> None:
        """An HTML login page instead of JSON is a transient error."""
        api.get(sn.TABLE).mock(
            return_value=httpx.Response(200, content=b"<html>Instance hibernating</html>")
        )
        with pytest.raises(TransientError, match="not JSON"):
            await adapter.changed_tickets(None)

    async def test_bad_timestamp_is_transient(self, api, adapter) -> None:
        """A sys_updated_on that is not a timestamp is a shape error naming the field."""
        api.get(sn.TABLE).mock(return_value=sn.result([sn.change_row(sn.sys_id(1), "yesterday")]))
        with pytest.raises(TransientError, match="sys_updated_on"):
            await adapter.changed_tickets(None)


class TestGetTicket:
    async def test_maps_the_incident(self, api, adapter) -> None:
        """An incident becomes a canonical Ticket with codes and UTC times."""
        route = api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        expected = Ticket(
            ref=TicketRef(system="sn", id=sn.SYS_ID, number="INC0010002"),
            summary="Unable to connect to office wifi",
            description="Since this morning the laptop drops off the network.",
            status="In Progress",
            status_class=StatusClass.WORKING,
            priority="3",
            priority_rank=3,
            company=sn.COMPANY,
            assignee=sn.ASSIGNEE,
            created_at=datetime(2025, 3, 1, 9, tzinfo=UTC),
            updated_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
            fields={
                "state_code": "2",
                "hold_reason": None,
                "impact": "2",
                "urgency": "2",
                "correlation_id": "0123456789abcdef",
                "sys_mod_count": "4",
            },
        )
        ticket = await adapter.get_ticket(sn.SYS_ID)
        params = params_of(route)
        assert (expected, "false", "true") == (
            ticket,
            params["sysparm_display_value"],
            params["sysparm_exclude_reference_link"],
        )

    @pytest.mark.parametrize(
        ("state", "status", "status_class", "closed"),
        [
            ("1", "New", StatusClass.NEW, False),
            ("3", "On Hold", StatusClass.WAITING_ON_THIRD_PARTY, False),
            ("6", "Resolved", StatusClass.RESOLVED, True),
            ("7", "Closed", StatusClass.CLOSED, True),
            ("8", "Canceled", StatusClass.CANCELLED, True),
            ("42", "42", StatusClass.WORKING, False),
        ],
    )
    async def test_states(
        self, api, adapter, state: str, status: str, status_class: StatusClass, closed: bool
    ) -> None:
        """State codes map to names (unknown codes stay raw) and classes; 6, 7 and 8 are done."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident(state=state)))
        ticket = await adapter.get_ticket(sn.SYS_ID)
        assert (status, status_class, closed) == (ticket.status, ticket.status_class, ticket.closed)

    @pytest.mark.parametrize(
        ("hold_reason", "expected"),
        [
            ("1", StatusClass.WAITING_ON_CUSTOMER),
            ("3", StatusClass.WAITING_ON_THIRD_PARTY),
            ("4", StatusClass.WAITING_ON_THIRD_PARTY),
            ("5", StatusClass.WAITING_ON_THIRD_PARTY),
        ],
    )
    async def test_on_hold_is_classed_by_hold_reason(
        self, api, adapter, hold_reason: str, expected: StatusClass
    ) -> None:
        """On Hold awaiting the caller waits on the customer; awaiting anything else, a third party."""
        api.get(TICKET_PATH).mock(
            return_value=sn.result(sn.incident(state="3", hold_reason=hold_reason))
        )
        assert expected == (await adapter.get_ticket(sn.SYS_ID)).status_class

    async def test_configured_classes_override_the_defaults(self, api) -> None:
        """systems.<name>.status_classes wins over the adapter's defaults, hold reasons too."""
        ctx = AdapterContext(
            name="sn",
            base_url=sn.BASE_URL,
            status_classes={
                "In Progress": StatusClass.WAITING_ON_CUSTOMER,
                "On Hold/Awaiting Vendor": StatusClass.WORKING,
            },
            priority_ranks={"3": 1},
        )
        adapter = ServiceNowAdapter(ctx, sn.settings())
        api.get(TICKET_PATH).mock(
            side_effect=[
                sn.result(sn.incident()),
                sn.result(sn.incident(state="3", hold_reason="4")),
            ]
        )
        first = await adapter.get_ticket(sn.SYS_ID)
        second = await adapter.get_ticket(sn.SYS_ID)
        expected = (StatusClass.WAITING_ON_CUSTOMER, 1, StatusClass.WORKING)
        assert expected == (first.status_class, first.priority_rank, second.status_class)
        await adapter.aclose()

    async def test_hold_reason_name(self, api, adapter) -> None:
        """hold_reason 4 is shown as Awaiting Vendor."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident(state="3", hold_reason="4")))
        assert "Awaiting Vendor" == (await adapter.get_ticket(sn.SYS_ID)).fields["hold_reason"]

    async def test_reference_objects(self, api, adapter) -> None:
        """Reference fields given as {"link", "value"} objects still yield the sys_id."""
        link = f"{sn.BASE_URL}/api/now/table/core_company/{sn.COMPANY}"
        api.get(TICKET_PATH).mock(
            return_value=sn.result(sn.incident(company={"link": link, "value": sn.COMPANY}))
        )
        assert sn.COMPANY == (await adapter.get_ticket(sn.SYS_ID)).company

    async def test_not_found(self, api, adapter) -> None:
        """404 is NotFoundError."""
        api.get(TICKET_PATH).mock(
            return_value=sn.respond(
                {"error": {"message": "No Record found", "detail": "..."}, "status": "failure"},
                404,
            )
        )
        with pytest.raises(NotFoundError):
            await adapter.get_ticket(sn.SYS_ID)

    @pytest.mark.parametrize("bad", ["INC0010002", "../sys_user", sn.SYS_ID.upper(), ""])
    async def test_not_a_sys_id(self, api, adapter, bad: str) -> None:
        """An id that is not 32 lower-case hex characters is NotFoundError without a request."""
        with pytest.raises(NotFoundError):
            await adapter.get_ticket(bad)
        assert 0 == len(api.calls)

    async def test_result_not_an_object(self, api, adapter) -> None:
        """A result that is a list where a record should be is a shape error."""
        api.get(TICKET_PATH).mock(return_value=sn.result([]))
        with pytest.raises(TransientError, match=r"\$\.result should be an object"):
            await adapter.get_ticket(sn.SYS_ID)


class TestFindTicket:
    async def test_found(self, api, adapter) -> None:
        """Looked up by number=..., first row."""
        route = api.get(sn.TABLE).mock(return_value=sn.result([sn.incident()]))
        ticket = await adapter.find_ticket("INC0010002")
        expected = ("number=INC0010002", "1", sn.SYS_ID)
        params = params_of(route)
        actual = (
            params["sysparm_query"],
            params["sysparm_limit"],
            ticket.ref.id if ticket else None,
        )
        assert expected == actual

    async def test_missing(self, api, adapter) -> None:
        """No row: None."""
        api.get(sn.TABLE).mock(return_value=sn.result([]))
        assert None is await adapter.find_ticket("INC0999999")

    async def test_query_injection(self, api, adapter) -> None:
        """A number that would extend the encoded query is not looked up."""
        assert (None, 0) == (await adapter.find_ticket("INC1^ORnumber!=x"), len(api.calls))


def people(api: respx.MockRouter, **names: str) -> respx.Route:
    """sys_user look-ups: user_name -> display name; unknown users give no rows."""

    def answer(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)["sysparm_query"]
        user = query.removeprefix("user_name=")
        rows = [{"user_name": user, "name": names[user]}] if user in names else []
        return sn.result(rows)

    return api.get("/api/now/table/sys_user").mock(side_effect=answer)


def journal_pages(api: respx.MockRouter, rows: list[dict[str, Any]]) -> respx.Route:
    """The journal served in pages by ``sysparm_offset`` / ``sysparm_limit``."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        offset, limit = int(params.get("sysparm_offset", 0)), int(params["sysparm_limit"])
        return sn.result(rows[offset : offset + limit])

    return api.get(sn.JOURNAL).mock(side_effect=answer)


class TestListNotes:
    async def test_authors_are_shown_by_name_once_looked_up(self, api, adapter) -> None:
        """Journal authors (user names) are shown by display name, looked up once each;
        users that cannot be read keep their user name."""
        api.get(sn.JOURNAL).mock(
            return_value=sn.result(
                [
                    sn.journal(sn.sys_id(1), "a", by="beth.anglin"),
                    sn.journal(sn.sys_id(3), "c", by="ghost.user"),
                ],
                **{"X-Total-Count": "2"},
            )
        )
        route = people(api, **{"beth.anglin": "Beth Anglin"})
        notes = await adapter.list_notes(sn.SYS_ID)
        again = await adapter.list_notes(sn.SYS_ID)
        assert ["Beth Anglin", "ghost.user"] == [n.author for n in notes]
        assert [n.author for n in notes] == [n.author for n in again]
        assert 2 == route.call_count

    async def test_query_and_mapping(self, api, adapter) -> None:
        """Journal entries of the record: comments are public, work notes internal."""
        route = api.get(sn.JOURNAL).mock(
            return_value=sn.result(
                [
                    sn.journal(sn.sys_id(11), "Please reboot", created="2025-03-01 09:00:00"),
                    sn.journal(
                        sn.sys_id(12),
                        "Escalated to L2",
                        element="work_notes",
                        created="2025-03-01 09:05:00",
                        by="itil.user",
                    ),
                ],
                **{"X-Total-Count": "2"},
            )
        )
        people(api, **{"beth.anglin": "Beth Anglin"})
        notes = await adapter.list_notes(sn.SYS_ID)
        expected = [
            Note(
                system="sn",
                ticket_id=sn.SYS_ID,
                id=sn.sys_id(11),
                text="Please reboot",
                visibility=Visibility.PUBLIC,
                created_at=datetime(2025, 3, 1, 9, tzinfo=UTC),
                author="Beth Anglin",
                kind="comments",
                sequence=0,
            ),
            Note(
                system="sn",
                ticket_id=sn.SYS_ID,
                id=sn.sys_id(12),
                text="Escalated to L2",
                visibility=Visibility.INTERNAL,
                created_at=datetime(2025, 3, 1, 9, 5, tzinfo=UTC),
                author="itil.user",
                kind="work_notes",
                sequence=1,
            ),
        ]
        query = (
            f"element_id={sn.SYS_ID}^name=incident^elementINcomments,work_notes"
            "^ORDERBYsys_created_on"
        )
        assert (expected, query) == (notes, params_of(route)["sysparm_query"])

    async def test_other_elements_are_unknown(self, api, adapter) -> None:
        """A journal element other than comments/work_notes is UNKNOWN (treated as internal)."""
        api.get(sn.JOURNAL).mock(
            return_value=sn.result([sn.journal(sn.sys_id(13), "x", element="u_vendor_notes")])
        )
        people(api, **{"beth.anglin": "Beth Anglin"})
        assert [Visibility.UNKNOWN] == [n.visibility for n in await adapter.list_notes(sn.SYS_ID)]

    async def test_pages(self, api, adapter) -> None:
        """Journal pages are followed like any list."""
        route = api.get(sn.JOURNAL).mock(
            side_effect=[
                sn.result(
                    [sn.journal(sn.sys_id(1), "a"), sn.journal(sn.sys_id(2), "b")],
                    Link=sn.link_header(sn.JOURNAL, offset=0, limit=2, total=3),
                ),
                sn.result(
                    [sn.journal(sn.sys_id(3), "c", created="2025-03-01 09:31:00")],
                    Link=sn.link_header(sn.JOURNAL, offset=2, limit=2, total=3),
                ),
            ]
        )
        people(api)
        notes = await adapter.list_notes(sn.SYS_ID)
        assert (["a", "b", "c"], 2) == ([n.text for n in notes], route.call_count)


class TestAddNote:
    @pytest.mark.parametrize(
        ("visibility", "field"),
        [
            (Visibility.PUBLIC, "comments"),
            (Visibility.INTERNAL, "work_notes"),
            (Visibility.UNKNOWN, "work_notes"),
        ],
    )
    async def test_writes_the_journal_field(
        self, api, adapter, visibility: Visibility, field: str
    ) -> None:
        """PUBLIC goes to comments, anything else to work_notes; the record's identity,
        version and the journal field's display value are asked back (the answer proves
        the write); an answer that shows no entry is proven from the journal table."""
        patch = api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        people(api)
        ours = sn.journal(sn.sys_id(99), f"Hi {MARKER}", element=field, by=sn.USERNAME)
        api.get(sn.JOURNAL).mock(return_value=sn.result([ours]))
        note_id = await adapter.add_note(sn.SYS_ID, NoteDraft(f"Hi {MARKER}", visibility), KEY)
        request = patch.calls.last.request
        decided = "state,hold_reason,priority,impact,urgency,assigned_to,short_description"
        fields = f"sys_id,sys_mod_count,sys_updated_on,{field},{decided},company,number"
        expected = (sn.sys_id(99), {field: f"Hi {MARKER}"}, fields, "true")
        params = request.url.params
        actual = (
            note_id,
            json.loads(request.content),
            params["sysparm_fields"],
            params["sysparm_display_value"],
        )
        assert expected == actual
        assert "x-no-response-body" not in request.headers

    @staticmethod
    def shown(field: str, *entries: str) -> httpx.Response:
        """A PATCH answer with display values: the journal field lists entries newest first."""
        dump = "".join(
            f"2025-03-01 10:0{n}:00 - Someone (Label)\n{text}\n\n" for n, text in enumerate(entries)
        )
        return sn.result({"sys_id": sn.SYS_ID, "sys_mod_count": "4", field: dump})

    async def test_the_answer_shows_the_entry_so_nothing_is_read(self, api, adapter) -> None:
        """The answer's display value starts with our entry: proven by the write itself,
        one call; the entry's id is not shown there (None)."""
        api.patch(TICKET_PATH).mock(
            return_value=self.shown("comments", "Line tested\n\nagain", "Older")
        )
        draft = NoteDraft("Line tested\n\nagain", Visibility.PUBLIC)
        assert await adapter.add_note(sn.SYS_ID, draft, KEY) is None
        assert ["PATCH"] == [call.request.method for call in api.calls]

    async def test_another_newest_entry_is_checked_in_the_journal(self, api, adapter) -> None:
        """The answer's newest entry is not ours (or it shows none): the journal decides."""
        api.patch(TICKET_PATH).mock(return_value=self.shown("comments", "Someone else", "Hi"))
        people(api)
        ours = sn.journal(sn.sys_id(5), "Hi", by=sn.USERNAME)
        journal = api.get(sn.JOURNAL).mock(return_value=sn.result([ours]))
        note_id = await adapter.add_note(sn.SYS_ID, NoteDraft("Hi", Visibility.PUBLIC), KEY)
        assert (sn.sys_id(5), 1) == (note_id, journal.call_count)

    async def test_looks_the_entry_up_by_author_and_body(self, api, adapter) -> None:
        """The new entry's id: the newest journal entry of the integration user with this
        body; a person's entry with the same words is not it."""
        api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        people(api)
        rows = [
            sn.journal(sn.sys_id(1), "Hi", by=sn.USERNAME, created="2025-03-01 09:00:00"),
            sn.journal(sn.sys_id(2), "Hi", by=sn.USERNAME, created="2025-03-01 09:30:00"),
            sn.journal(sn.sys_id(3), "Hi", created="2025-03-01 09:40:00"),
        ]
        journal_pages(api, rows)
        note_id = await adapter.add_note(sn.SYS_ID, NoteDraft("Hi", Visibility.PUBLIC), KEY)
        assert sn.sys_id(2) == note_id

    async def test_no_entry_after_a_proven_patch_is_refused(self, api, adapter) -> None:
        """The instance answered the PATCH with our record but stored no journal entry: the
        field was dropped (ACL on comments); refused, naming the field."""
        api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        api.get(sn.JOURNAL).mock(return_value=sn.result([]))
        with pytest.raises(PermanentError, match=r"comments.*not allowed"):
            await adapter.add_note(sn.SYS_ID, NoteDraft("Hi", Visibility.PUBLIC), KEY)

    @pytest.mark.parametrize(
        "answer",
        [
            httpx.Response(200, text="<html>Instance hibernating</html>"),
            httpx.Response(200),
            httpx.Response(204),
            sn.result([]),
            sn.respond({"error": {"message": "odd"}}),
            sn.result({"sys_id": sn.OTHER_SYS_ID}),
        ],
        ids=["html", "empty-200", "204", "result-array", "no-result", "other-record"],
    )
    async def test_an_unproven_answer_is_uncertain(self, api, adapter, answer) -> None:
        """A 2xx that is not the JSON record we wrote proves nothing: uncertain, not resent,
        and no entry is looked up."""
        patch = api.patch(TICKET_PATH).mock(return_value=answer)
        with pytest.raises(TransientError) as caught:
            await adapter.add_note(sn.SYS_ID, NoteDraft("Hi", Visibility.PUBLIC), KEY)
        assert (True, 1) == (caught.value.uncertain, patch.call_count)
        assert ["PATCH"] == [c.request.method for c in api.calls]

    async def test_text_is_written_as_drafted(self, api, adapter) -> None:
        """No marker is added: the text is written exactly as the engine drafted it."""
        patch = api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        people(api)
        ours = sn.journal(sn.sys_id(7), "Hi", by=sn.USERNAME)
        api.get(sn.JOURNAL).mock(return_value=sn.result([ours]))
        await adapter.add_note(sn.SYS_ID, NoteDraft("Hi", Visibility.PUBLIC), KEY)
        assert {"comments": "Hi"} == json.loads(patch.calls.last.request.content)

    async def test_lookup_failure_after_write(self, api, adapter) -> None:
        """If the follow-up lookup fails the note is still written: None, not an error."""
        api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        api.get(sn.JOURNAL).mock(return_value=sn.respond({}, 503))
        assert None is await adapter.add_note(sn.SYS_ID, NoteDraft(MARKER, Visibility.PUBLIC), KEY)

    async def test_server_error_is_uncertain_and_not_resent(self, api, adapter) -> None:
        """A 5xx on the PATCH is TransientError(uncertain=True) after one attempt."""
        patch = api.patch(TICKET_PATH).mock(return_value=sn.respond({}, 502))
        with pytest.raises(TransientError) as caught:
            await adapter.add_note(sn.SYS_ID, NoteDraft(MARKER, Visibility.PUBLIC), KEY)
        assert (True, 1) == (caught.value.uncertain, patch.call_count)

    async def test_timeout_is_uncertain(self, api, adapter) -> None:
        """A read timeout on the PATCH may have applied it: uncertain, not resent."""
        patch = api.patch(TICKET_PATH).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(TransientError) as caught:
            await adapter.add_note(sn.SYS_ID, NoteDraft(MARKER, Visibility.PUBLIC), KEY)
        assert (True, 1) == (caught.value.uncertain, patch.call_count)


class TestFindNote:
    async def test_found_by_marker(self, api, adapter) -> None:
        """A draft carrying a marker (opted in): the entry carrying it."""
        people(api)
        rows = [sn.journal(sn.sys_id(4), "other"), sn.journal(sn.sys_id(5), f"x\n\n{MARKER}")]
        journal_pages(api, rows)
        draft = NoteDraft(f"x\n\n{MARKER}", Visibility.PUBLIC)
        assert sn.sys_id(5) == await adapter.find_note(sn.SYS_ID, KEY, draft)

    async def test_found_by_author_body_and_window(self, api, adapter) -> None:
        """Without a marker: the integration user's entry with the same body (HTML and
        whitespace aside), not older than the window; nothing else."""
        people(api)
        rows = [
            sn.journal(sn.sys_id(1), "Hi  there", by=sn.USERNAME, created="2025-03-01 08:00:00"),
            sn.journal(sn.sys_id(2), "Hi there", created="2025-03-01 09:30:00"),
            sn.journal(
                sn.sys_id(3), "<p>Hi\nthere</p>", by=sn.USERNAME, created="2025-03-01 09:31:00"
            ),
        ]
        journal_pages(api, rows)
        draft = NoteDraft("Hi there", Visibility.PUBLIC)
        since = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        assert sn.sys_id(3) == await adapter.find_note(sn.SYS_ID, KEY, draft, since)
        assert sn.sys_id(1) == await adapter.find_note(sn.SYS_ID, KEY, draft)
        other = NoteDraft("Something else", Visibility.PUBLIC)
        assert None is await adapter.find_note(sn.SYS_ID, KEY, other)


class TestCreateTicket:
    async def test_body_and_ref(self, api, adapter) -> None:
        """The draft becomes short_description, description, impact/urgency and correlation."""
        route = api.post(sn.TABLE).mock(
            return_value=sn.result(
                {"sys_id": sn.SYS_ID, "number": "INC0010002", "correlation_id": KEY}, 201
            )
        )
        draft = TicketDraft(
            summary="Printer offline",
            description="Details",
            priority="2",
            account={"company": sn.COMPANY, "caller_id": sn.ASSIGNEE, "correlation_id": "no"},
        )
        ref = await adapter.create_ticket(draft, KEY)
        expected_body = {
            "company": sn.COMPANY,
            "caller_id": sn.ASSIGNEE,
            "short_description": "Printer offline",
            "description": "Details",
            "correlation_id": KEY,
            "correlation_display": "ticketbridge",
            "impact": "1",
            "urgency": "2",
        }
        request = route.calls.last.request
        expected = (
            TicketRef("sn", sn.SYS_ID, "INC0010002"),
            expected_body,
            "sys_id,number,correlation_id",
        )
        actual = (ref, json.loads(request.content), request.url.params["sysparm_fields"])
        assert expected == actual

    @pytest.mark.parametrize(
        ("priority", "impact", "urgency"),
        [("1", "1", "1"), ("2", "1", "2"), ("3", "2", "2"), ("4", "2", "3"), ("5", "3", "3")],
    )
    async def test_priority_matrix(
        self, api, adapter, priority: str, impact: str, urgency: str
    ) -> None:
        """Priority is written as impact and urgency."""
        route = api.post(sn.TABLE).mock(side_effect=sn.echo_write)
        await adapter.create_ticket(TicketDraft("s", "d", priority=priority), KEY)
        body = json.loads(route.calls.last.request.content)
        assert (impact, urgency) == (body["impact"], body["urgency"])

    async def test_bad_priority(self, api, adapter) -> None:
        """A priority outside 1-5 is a permanent error before any request."""
        with pytest.raises(PermanentError):
            await adapter.create_ticket(TicketDraft("s", "d", priority="urgent"), KEY)

    async def test_server_error_is_uncertain(self, api, adapter) -> None:
        """A 5xx on create is uncertain and not resent."""
        route = api.post(sn.TABLE).mock(return_value=sn.respond({}, 500))
        with pytest.raises(TransientError) as caught:
            await adapter.create_ticket(TicketDraft("s", "d"), KEY)
        assert (True, 1) == (caught.value.uncertain, route.call_count)

    async def test_answer_without_sys_id(self, api, adapter) -> None:
        """201 without a sys_id leaves the create uncertain."""
        api.post(sn.TABLE).mock(return_value=sn.result({}, 201))
        with pytest.raises(TransientError) as caught:
            await adapter.create_ticket(TicketDraft("s", "d"), KEY)
        assert True is caught.value.uncertain


class TestFindCreated:
    async def test_found(self, api, adapter) -> None:
        """Looked up by correlation_id and correlation_display."""
        route = api.get(sn.TABLE).mock(
            return_value=sn.result([{"sys_id": sn.SYS_ID, "number": "INC0010002"}])
        )
        ref = await adapter.find_created(KEY)
        query = f"correlation_id={KEY}^correlation_display=ticketbridge^ORDERBYsys_created_on"
        expected = (TicketRef("sn", sn.SYS_ID, "INC0010002"), query)
        assert expected == (ref, params_of(route)["sysparm_query"])

    async def test_missing(self, api, adapter) -> None:
        """No such record: None."""
        api.get(sn.TABLE).mock(return_value=sn.result([]))
        assert None is await adapter.find_created(KEY)


class TestUpdateTicket:
    async def test_same_values_write_nothing(self, api, adapter) -> None:
        """Compare before write: state and priority already set send no PATCH."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        await adapter.update_ticket(sn.SYS_ID, FieldChange(status="in progress", priority="3"))
        assert ["GET"] == [c.request.method for c in api.calls]

    async def test_resolve_sends_close_code(self, api, adapter) -> None:
        """Resolved needs close_code and close_notes."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        patch = api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        await adapter.update_ticket(sn.SYS_ID, FieldChange(status="Resolved"))
        expected = {
            "state": "6",
            "close_code": "Resolved by caller",
            "close_notes": "Resolved via ticketbridge",
        }
        assert expected == json.loads(patch.calls.last.request.content)

    async def test_on_hold_sends_hold_reason(self, api) -> None:
        """On Hold needs a hold_reason (configurable)."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        patch = api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        adapter = sn.adapter(hold_reason="4")
        try:
            await adapter.update_ticket(sn.SYS_ID, FieldChange(status="On Hold"))
        finally:
            await adapter.aclose()
        expected = ({"state": "3", "hold_reason": "4"}, None)
        request = patch.calls.last.request
        assert expected == (json.loads(request.content), request.headers.get("x-no-response-body"))

    async def test_priority_as_impact_and_urgency(self, api, adapter) -> None:
        """A priority change writes impact and urgency, never priority itself."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        patch = api.patch(TICKET_PATH).mock(side_effect=sn.echo_write)
        await adapter.update_ticket(sn.SYS_ID, FieldChange(priority="1 - Critical"))
        assert {"impact": "1", "urgency": "1"} == json.loads(patch.calls.last.request.content)

    async def test_a_state_the_instance_kept_is_refused_naming_it(self, api, adapter) -> None:
        """The PATCH is answered 200 but shows the old state (a field ACL dropped it): the
        change is refused with the field and the likely cause, not recorded as done."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        api.patch(TICKET_PATH).mock(side_effect=lambda r: sn.echo_write(r, state="2"))
        with pytest.raises(PermanentError) as refused:
            await adapter.update_ticket(sn.SYS_ID, FieldChange(status="New"))
        assert "state (sent '1', still '2')" in str(refused.value)
        assert "not allowed to write" in str(refused.value)

    async def test_a_reference_stored_as_sys_id_is_accepted(self, api, adapter) -> None:
        """A field given by name and answered as the sys_id it resolved to was written."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident(assignment_group="")))
        patch = api.patch(TICKET_PATH).mock(
            side_effect=lambda r: sn.echo_write(r, assignment_group=sn.COMPANY)
        )
        await adapter.update_ticket(sn.SYS_ID, FieldChange(fields={"assignment_group": "Net"}))
        assert 1 == patch.call_count

    async def test_a_field_the_table_lacks_is_refused_naming_it(self, api, adapter) -> None:
        """The instance drops unknown fields silently and leaves them out of its answer: the
        change is refused naming the field, not recorded as done."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        api.patch(TICKET_PATH).mock(
            return_value=sn.result({"sys_id": sn.SYS_ID, "sys_mod_count": "5"})
        )
        with pytest.raises(PermanentError, match=r"no field u_typo: the incident table"):
            await adapter.update_ticket(sn.SYS_ID, FieldChange(fields={"u_typo": "x"}))

    async def test_link_value_is_ignored(self, api, adapter) -> None:
        """external_ref has no home at ServiceNow: no request at all."""
        await adapter.update_ticket(sn.SYS_ID, FieldChange(external_ref="4711"))
        assert 0 == len(api.calls)

    async def test_unknown_status(self, api, adapter) -> None:
        """A status ServiceNow does not know is a permanent error before any request."""
        with pytest.raises(PermanentError):
            await adapter.update_ticket(sn.SYS_ID, FieldChange(status="Waiting on Vendor"))
        assert 0 == len(api.calls)

    async def test_patch_server_error_is_uncertain(self, api, adapter) -> None:
        """A 5xx on the PATCH is uncertain and not resent."""
        api.get(TICKET_PATH).mock(return_value=sn.result(sn.incident()))
        patch = api.patch(TICKET_PATH).mock(return_value=sn.respond({}, 503))
        with pytest.raises(TransientError) as caught:
            await adapter.update_ticket(sn.SYS_ID, FieldChange(status="New"))
        assert (True, 1) == (caught.value.uncertain, patch.call_count)


class TestErrors:
    async def test_unauthorized(self, api, adapter) -> None:
        """401 is AuthFailedError, tried once."""
        route = api.get(sn.TABLE).mock(
            return_value=sn.respond(
                {"error": {"message": "User Not Authenticated", "detail": "..."}}, 401
            )
        )
        with pytest.raises(AuthFailedError):
            await adapter.check()
        assert 1 == route.call_count

    async def test_rate_limited_then_ok(self, api, adapter) -> None:
        """429 with Retry-After is retried."""
        route = api.get(TICKET_PATH).mock(
            side_effect=[
                sn.respond(
                    {"error": {"message": "Rate limit exceeded"}, "status": "failure"},
                    429,
                    **{"Retry-After": "0"},
                ),
                sn.result(sn.incident()),
            ]
        )
        await adapter.get_ticket(sn.SYS_ID)
        assert 2 == route.call_count

    async def test_rate_limited_carries_retry_after(self, api) -> None:
        """Out of attempts, RateLimitedError carries Retry-After."""
        api.get(sn.TABLE).mock(
            return_value=sn.respond({"error": {}}, 429, **{"Retry-After": "120"})
        )
        adapter = sn.adapter(retry=RetrySettings(attempts=1, wait_min=0, wait_max=0))
        try:
            with pytest.raises(RateLimitedError) as caught:
                await adapter.check()
        finally:
            await adapter.aclose()
        assert 120.0 == caught.value.retry_after


def hook(body: bytes, token: str | None = sn.TOKEN, header: str = "x-ticketbridge-token"):
    headers = {"content-type": "application/json"}
    if token is not None:
        headers[header] = token
    return WebhookRequest(headers=headers, query={}, body=body)


class TestWebhook:
    async def test_our_own_writes_echo_is_recognised(self, api, adapter) -> None:
        """A note written right after a handled version or our own, whose answer shows the
        decided fields as our previous note's did, left a version whose webhook is only
        its echo; the first note after a change, one whose answer shows another state (a
        Business Rule moved it), or one after a version not seen, is read."""
        answers = iter(
            [
                (5, "On Hold"),
                (6, "On Hold"),
                (7, "On Hold"),
                (8, "In Progress"),
                (10, "In Progress"),
            ]
        )

        def answer(request: httpx.Request) -> httpx.Response:
            count, state = next(answers)
            text = json.loads(request.content)["comments"]
            dump = f"2025-03-01 10:00:00 - Integration (Additional comments)\n{text}\n\n"
            return sn.result(
                {"sys_id": sn.SYS_ID, "sys_mod_count": str(count), "state": state, "comments": dump}
            )

        api.patch(TICKET_PATH).mock(side_effect=answer)

        def handled(count: int) -> None:
            fields = {"sys_mod_count": str(count)}
            adapter.handled(Ticket(TicketRef("vendor", sn.SYS_ID), "x", fields=fields))

        handled(4)
        for n in range(5):
            await adapter.add_note(sn.SYS_ID, NoteDraft(f"Note {n}", Visibility.PUBLIC), KEY)
            if n == 0:
                handled(5)  # the first note's echo was read

        def echo(count: int) -> WebhookHint:
            return WebhookHint(sn.SYS_ID, f"{sn.SYS_ID}:{count}")

        seen = [await adapter.own_echo(echo(n)) for n in (5, 6, 7, 8, 10)]
        assert [False, True, True, False, False] == seen
        body = json.dumps({"sys_id": sn.SYS_ID, "sys_mod_count": "7"}).encode()
        assert [] == await adapter.webhook_hints(hook(body))

    async def test_good_token(self, adapter) -> None:
        """The shared secret header admits the body's sys_id; delivery key uses sys_mod_count."""
        body = json.dumps({"sys_id": sn.SYS_ID, "sys_mod_count": "5"}).encode()
        assert [WebhookHint(sn.SYS_ID, f"{sn.SYS_ID}:5")] == await adapter.webhook_hints(hook(body))

    async def test_delivery_key_from_updated_on(self, adapter) -> None:
        """Without sys_mod_count, sys_updated_on versions the delivery key."""
        body = json.dumps({"sys_id": sn.SYS_ID, "sys_updated_on": "2025-03-01 10:00:00"}).encode()
        hints = await adapter.webhook_hints(hook(body))
        assert [f"{sn.SYS_ID}:2025-03-01 10:00:00"] == [h.delivery_key for h in hints]

    async def test_delivery_key_from_body(self, adapter) -> None:
        """With no version at all the delivery key is the body's hash."""
        body = json.dumps({"sys_id": sn.SYS_ID}).encode()
        hints = await adapter.webhook_hints(hook(body))
        assert [hashlib.sha256(body).hexdigest()] == [h.delivery_key for h in hints]

    async def test_custom_header(self) -> None:
        """The configured header name is used (headers arrive lower-cased)."""
        adapter = sn.adapter(webhook_header="X-SN-Secret")
        body = json.dumps({"sys_id": sn.SYS_ID}).encode()
        try:
            hints = await adapter.webhook_hints(hook(body, header="x-sn-secret"))
        finally:
            await adapter.aclose()
        assert [sn.SYS_ID] == [h.ticket_id for h in hints]

    @pytest.mark.parametrize("token", [None, "", "wrong", sn.TOKEN[:-1], sn.TOKEN + "x"])
    async def test_bad_token(self, adapter, token: str | None) -> None:
        """A missing or wrong token is refused."""
        body = json.dumps({"sys_id": sn.SYS_ID}).encode()
        with pytest.raises(WebhookAuthError):
            await adapter.webhook_hints(hook(body, token))

    async def test_no_token_configured_refuses_all(self) -> None:
        """Without webhook_token every webhook is refused."""
        adapter = sn.adapter(webhook_token=None)
        body = json.dumps({"sys_id": sn.SYS_ID}).encode()
        try:
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(hook(body))
        finally:
            await adapter.aclose()

    async def test_token_checked_before_body(self, adapter) -> None:
        """A malformed body with a wrong token is an auth error (nothing parsed for strangers)."""
        with pytest.raises(WebhookAuthError):
            await adapter.webhook_hints(hook(b"{not json", "wrong"))

    @pytest.mark.parametrize(
        "body",
        [
            b"{not json",
            b"[]",
            b"\xff",
            json.dumps({"number": "INC0010002"}).encode(),
            json.dumps({"sys_id": "INC0010002"}).encode(),
            json.dumps({"sys_id": sn.SYS_ID.upper()}).encode(),
            json.dumps({"sys_id": 12345}).encode(),
        ],
    )
    async def test_malformed_body(self, adapter, body: bytes) -> None:
        """A body without a 32-hex sys_id is a payload error."""
        with pytest.raises(WebhookPayloadError):
            await adapter.webhook_hints(hook(body))
