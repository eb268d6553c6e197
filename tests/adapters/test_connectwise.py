"""ConnectWiseAdapter against respx-mocked Manage REST API answers."""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import respx
from pydantic import ValidationError
from structlog.testing import capture_logs

from ticketbridge.adapters import adapter_class
from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter, ConnectWiseSettings
from ticketbridge.adapters.connectwise.simulator import ConnectWiseState
from ticketbridge.adapters.connectwise.simulator import create_app as create_simulator
from ticketbridge.adapters.connectwise.webhooks import KEY_FETCHES_PER_MINUTE
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.domain import (
    Contact,
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
    WebhookError,
    WebhookPayloadError,
)

from . import cw_payloads as cw

pytestmark = pytest.mark.anyio

KEY = "0123456789abcdef"  # idempotency keys are 16 hex characters
MARKER = marker_for(KEY, "a marker secret, 32 characters", "cw", "4711")
API = {"id": 9, "identifier": "TicketBridgeAPI", "name": "TicketBridge API", "_info": {}}


@pytest.fixture
def api() -> respx.MockRouter:
    with respx.mock(base_url=cw.BASE_URL, assert_all_called=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[ConnectWiseAdapter]:
    adapter = cw.adapter()
    yield adapter
    await adapter.aclose()


def sign(signing_key: str, body: bytes) -> str:
    digest = hmac.new(hashlib.sha256(signing_key.encode()).digest(), body, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class KeyServer:
    """Serves ``{"signing_key": ...}`` per key URL through ``ctx.webhook_transport``."""

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self.keys = dict(keys or {cw.KEY_URL: "s3cr3t-signing-key"})
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = self.keys.get(str(request.url))
        if key is None:
            return httpx.Response(404, json={"code": "NotFound"})
        return httpx.Response(200, json={"signing_key": key})


def webhook(body: bytes, signature: str | None, **query: str) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-content-signature"] = signature
    return WebhookRequest(headers=headers, query=query, body=body)


class TestRegistration:
    def test_registry_finds_the_adapter(self) -> None:
        """The built-in registry resolves kind "connectwise" to this class."""
        assert ConnectWiseAdapter is adapter_class("connectwise")

    def test_class_attributes(self) -> None:
        """It is a PSA-only adapter with per-board statuses."""
        assert ("connectwise", "ConnectWise PSA", frozenset({Side.PSA}), None) == (
            ConnectWiseAdapter.kind,
            ConnectWiseAdapter.display_name,
            ConnectWiseAdapter.sides,
            ConnectWiseAdapter.known_statuses,
        )


class TestSettings:
    def test_defaults(self) -> None:
        """link_field defaults to externalXRef, page_size to 100, no extra key hosts."""
        s = ConnectWiseSettings(company_id="a", public_key="b", private_key="c", client_id="d")
        assert ("externalXRef", 100, []) == (s.link_field, s.page_size, s.allowed_key_hosts)

    def test_custom_link_field(self) -> None:
        """custom:<caption> names a custom field by caption."""
        assert "Vendor Ticket" == cw.settings(link_field="custom:Vendor Ticket").custom_caption

    @pytest.mark.parametrize("value", ["summary", "custom:", "custom:   ", "externalxref"])
    def test_bad_link_field(self, value: str) -> None:
        """Anything but externalXRef or custom:<caption> is refused."""
        with pytest.raises(ValidationError):
            cw.settings(link_field=value)

    @pytest.mark.parametrize("value", ["https://x.example", "x.example/path", "u@x.example", ""])
    def test_bad_key_host(self, value: str) -> None:
        """allowed_key_hosts takes host or host:port, nothing with a scheme, path or user."""
        with pytest.raises(ValidationError):
            cw.settings(allowed_key_hosts=[value])

    def test_secrets_are_hidden(self) -> None:
        """Keys do not show in the settings' repr."""
        assert cw.PRIVATE_KEY not in repr(cw.settings())

    def test_wrong_settings_type(self) -> None:
        """The adapter refuses another adapter's settings."""
        from ticketbridge.adapters.base import AdapterContext, AdapterSettings

        with pytest.raises(TypeError):
            ConnectWiseAdapter(AdapterContext(name="cw", base_url=cw.BASE_URL), AdapterSettings())


class TestRequestHeaders:
    async def test_auth_client_id_and_version(self, api, adapter) -> None:
        """Every call carries Basic company+public:private, clientId and the pinned version."""
        route = api.get("/service/tickets/count").mock(return_value=cw.respond({"count": 0}))
        await adapter.check()
        request = route.calls.last.request
        token = base64.b64encode(f"{cw.COMPANY_ID}+{cw.PUBLIC_KEY}:{cw.PRIVATE_KEY}".encode())
        expected = (f"Basic {token.decode()}", cw.CLIENT_ID, cw.MEDIA_TYPE)
        actual = (
            request.headers["authorization"],
            request.headers["clientid"],
            request.headers["accept"],
        )
        assert expected == actual


class TestChangedTickets:
    async def test_condition_order_and_paging_params(self, api, adapter) -> None:
        """The cursor becomes an inclusive lastUpdated condition, in keyset order, page 1."""
        route = api.get("/service/tickets").mock(return_value=cw.respond([]))
        since = datetime(2025, 3, 1, 12, 30, 5, 999000, tzinfo=timezone(timedelta(hours=2)))
        await adapter.changed_tickets(since)
        params = route.calls.last.request.url.params
        expected = {
            "conditions": "lastUpdated >= [2025-03-01T10:30:05Z]",
            "orderBy": "lastUpdated asc, id asc",
            "page": "1",
            "pageSize": "2",
        }
        assert expected == dict(params)

    async def test_first_sync_has_no_condition(self, api, adapter) -> None:
        """since=None asks for every ticket."""
        route = api.get("/service/tickets").mock(return_value=cw.respond([]))
        await adapter.changed_tickets(None)
        assert "conditions" not in route.calls.last.request.url.params

    async def test_follows_link_next_until_short_page(self, api, adapter) -> None:
        """Pages are followed while Link has rel=next, each the first page after the last
        ticket read (keyset); ids come back oldest first."""
        path = "/service/tickets"
        route = api.get(path).mock(
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
        changes = await adapter.changed_tickets(datetime(2025, 3, 1, 10, tzinfo=UTC))
        same_second = datetime(2025, 3, 1, 10, tzinfo=UTC)
        expected = [
            TicketChange("1", same_second),
            TicketChange("2", same_second),
            TicketChange("3", datetime(2025, 3, 1, 10, 0, 1, tzinfo=UTC)),
        ]
        keyset = (
            "(lastUpdated > [2025-03-01T10:00:00Z] or "
            "(lastUpdated = [2025-03-01T10:00:00Z] and id > 2))"
        )
        assert (expected, ["1", "1"], keyset) == (
            changes,
            [c.request.url.params["page"] for c in route.calls],
            route.calls[1].request.url.params["conditions"],
        )

    async def test_short_page_with_next_link_is_followed(self, api, adapter) -> None:
        """A short page is not the end while Link still names a next page."""
        path = "/service/tickets"
        route = api.get(path).mock(
            side_effect=[
                cw.respond(
                    [cw.summary_row(1, "2025-03-01T10:00:00Z")],
                    Link=cw.link_header(path, page=1, size=2, next_page=True, last=2),
                ),
                cw.respond([cw.summary_row(2, "2025-03-01T10:00:02Z")]),
            ]
        )
        changes = await adapter.changed_tickets(None)
        assert (["1", "2"], 2) == ([c.ticket_id for c in changes], route.call_count)

    async def test_full_page_without_link_asks_for_more(self, api, adapter) -> None:
        """A full page without a Link header is followed by one more request."""
        route = api.get("/service/tickets").mock(
            side_effect=[
                cw.respond(
                    [
                        cw.summary_row(1, "2025-03-01T10:00:00Z"),
                        cw.summary_row(2, "2025-03-01T10:00:00Z"),
                    ]
                ),
                cw.respond([]),
            ]
        )
        changes = await adapter.changed_tickets(None)
        assert (2, 2) == (len(changes), route.call_count)

    async def test_a_ticket_updated_while_paging_is_read_behind_the_cursor(
        self, api, adapter
    ) -> None:
        """A ticket updated during the walk is read again after the keyset, and reported
        once, at its latest time."""
        route = api.get("/service/tickets").mock(
            side_effect=[
                cw.respond(
                    [
                        cw.summary_row(1, "2025-03-01T10:00:00Z"),
                        cw.summary_row(2, "2025-03-01T10:00:01Z"),
                    ]
                ),
                cw.respond([cw.summary_row(1, "2025-03-01T10:00:05Z")]),
            ]
        )
        changes = await adapter.changed_tickets(None)
        expected = [
            TicketChange("2", datetime(2025, 3, 1, 10, 0, 1, tzinfo=UTC)),
            TicketChange("1", datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)),
        ]
        pages = [c.request.url.params["page"] for c in route.calls]
        assert (expected, ["1", "1"]) == (changes, pages)

    async def test_missing_last_updated_is_transient(self, api, adapter) -> None:
        """A row without _info.lastUpdated is a shape error naming the path."""
        row = cw.ticket(5, _info={"dateEntered": "2025-03-01T09:00:00Z"})
        api.get("/service/tickets").mock(return_value=cw.respond([row]))
        with pytest.raises(TransientError, match=r"_info\.lastUpdated"):
            await adapter.changed_tickets(None)

    async def test_server_ignoring_page_is_transient(self, api, adapter) -> None:
        """A server that answers every page with the same full page is an error, not a loop."""
        route = api.get("/service/tickets").mock(
            return_value=cw.respond(
                [
                    cw.summary_row(1, "2025-03-01T10:00:00Z"),
                    cw.summary_row(2, "2025-03-01T10:00:00Z"),
                ]
            )
        )
        with pytest.raises(TransientError, match="repeats"):
            await adapter.changed_tickets(None)
        assert 2 == route.call_count

    async def test_object_instead_of_array_is_transient(self, api, adapter) -> None:
        """A JSON object where the list should be is a shape error."""
        api.get("/service/tickets").mock(return_value=cw.respond({"id": 1}))
        with pytest.raises(TransientError, match="should be an array"):
            await adapter.changed_tickets(None)

    async def test_garbage_json_is_transient(self, api, adapter) -> None:
        """A body that is not JSON is a transient error (retried, then raised)."""
        route = api.get("/service/tickets").mock(
            return_value=httpx.Response(200, content=b"<html>maintenance</html>")
        )
        with pytest.raises(TransientError, match="not JSON"):
            await adapter.changed_tickets(None)
        assert 1 == route.call_count


class TestGetTicket:
    async def test_maps_the_ticket(self, api, adapter) -> None:
        """Ticket JSON becomes a canonical Ticket; the description is the first Discussion note."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(externalXRef="INC0010001"))
        )
        api.get("/service/tickets/4711/notes").mock(
            return_value=cw.respond(
                [
                    cw.note(1, "internal first", internal=True, created="2025-03-01T09:00:00Z"),
                    cw.note(2, "Printer shows error 49.", discussion=True),
                ]
            )
        )
        expected = Ticket(
            ref=TicketRef(system="cw", id="4711", number="4711"),
            summary="Printer offline on floor 2",
            description="Printer shows error 49.",
            status="New",
            status_class=StatusClass.NEW,
            priority="Priority 3 - Normal Response",
            priority_rank=3,
            company="AcmeCo",
            company_name="Acme Co Ltd",
            contact=Contact("Jane Doe", "jane.doe@acme.example", "5551234567"),
            queue="Service Desk",
            type="Hardware",
            assignee="jsmith",
            external_ref="INC0010001",
            created_at=datetime(2025, 3, 1, 9, tzinfo=UTC),
            updated_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
            updated_by="jsmith",
            fields={"board_id": 1, "status_id": 16, "priority_id": 8},
        )
        assert expected == await adapter.get_ticket("4711")

    @pytest.mark.parametrize(
        ("status", "closed_flag", "expected"),
        [
            ("In Progress", False, StatusClass.WORKING),
            ("Waiting on Vendor", False, StatusClass.WAITING_ON_THIRD_PARTY),
            ("Waiting on Client", False, StatusClass.WAITING_ON_CUSTOMER),
            ("Vendor Resolved - Verify with Client", False, StatusClass.WAITING_ON_CUSTOMER),
            ("Something Custom", False, StatusClass.WORKING),
            ("Something Custom", True, StatusClass.CLOSED),
            ("In Progress", True, StatusClass.CLOSED),
            ("Cancelled", True, StatusClass.CANCELLED),
            ("Closed", False, StatusClass.WAITING_ON_CUSTOMER),
        ],
    )
    async def test_status_classes(
        self, api, adapter, status: str, closed_flag: bool, expected: StatusClass
    ) -> None:
        """Board statuses map to classes; ConnectWise's closed flag decides whether it is done."""
        raw = cw.ticket(
            status={"id": 9, "name": status}, closedFlag=closed_flag, initialDescription="x"
        )
        api.get("/service/tickets/4711").mock(return_value=cw.respond(raw))
        ticket = await adapter.get_ticket("4711")
        assert (expected, closed_flag) == (ticket.status_class, ticket.closed)

    async def test_configured_classes_and_ranks(self, api) -> None:
        """systems.<name>.status_classes / priority_ranks override the defaults; an unmapped
        priority ranks by its ConnectWise sort order."""
        ctx = AdapterContext(
            name="cw",
            base_url=cw.BASE_URL,
            status_classes={"waiting vendor": StatusClass.WAITING_ON_THIRD_PARTY},
            priority_ranks={"Priority 3 - Normal Response": 2},
        )
        adapter = ConnectWiseAdapter(ctx, cw.settings())
        raws = [
            cw.ticket(status={"id": 9, "name": "Waiting  Vendor"}, initialDescription="x"),
            cw.ticket(priority={"id": 2, "name": "Odd", "sort": 7}, initialDescription="x"),
        ]
        api.get("/service/tickets/4711").mock(side_effect=[cw.respond(r) for r in raws])
        first, second = [await adapter.get_ticket("4711") for _ in raws]
        expected = (StatusClass.WAITING_ON_THIRD_PARTY, 2, 7)
        assert expected == (first.status_class, first.priority_rank, second.priority_rank)
        await adapter.aclose()

    async def test_initial_description_wins(self, api, adapter) -> None:
        """initialDescription, when the API returns it, is used without reading notes."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(initialDescription="From the portal form"))
        )
        assert "From the portal form" == (await adapter.get_ticket("4711")).description

    async def test_no_discussion_note(self, api, adapter) -> None:
        """Without any Discussion note the description is empty."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        api.get("/service/tickets/4711/notes").mock(
            return_value=cw.respond([cw.note(1, internal=True)])
        )
        assert "" == (await adapter.get_ticket("4711")).description

    async def test_link_value_from_custom_field(self, api) -> None:
        """With link_field custom:<caption> the link value is that custom field's value."""
        fields = cw.ticket()["customFields"]
        fields[0]["value"] = "INC0020002"
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(customFields=fields, initialDescription="d"))
        )
        adapter = cw.adapter(link_field="custom:Vendor Ticket")
        try:
            assert "INC0020002" == (await adapter.get_ticket("4711")).external_ref
        finally:
            await adapter.aclose()

    async def test_closed_flag(self, api, adapter) -> None:
        """closedFlag true means closed."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(closedFlag=True, initialDescription="d"))
        )
        assert True is (await adapter.get_ticket("4711")).closed

    async def test_not_found(self, api, adapter) -> None:
        """404 is NotFoundError."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond({"code": "NotFound", "message": "Ticket not found"}, 404)
        )
        with pytest.raises(NotFoundError):
            await adapter.get_ticket("4711")

    @pytest.mark.parametrize("bad", ["abc", "../system/members", "-1", "0", "1e3"])
    async def test_non_numeric_id_sends_nothing(self, api, adapter, bad: str) -> None:
        """An id that is not a positive integer is NotFoundError without any request."""
        with pytest.raises(NotFoundError):
            await adapter.get_ticket(bad)
        assert 0 == len(api.calls)


class TestFindTicket:
    async def test_found(self, api, adapter) -> None:
        """The number people see is the ticket id."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(initialDescription="d"))
        )
        found = await adapter.find_ticket("#4711")
        assert "4711" == (found.ref.id if found else None)

    async def test_missing(self, api, adapter) -> None:
        """404 means no such ticket: None."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond({"code": "NotFound"}, 404))
        assert None is await adapter.find_ticket("4711")

    async def test_not_a_number(self, api, adapter) -> None:
        """A number that cannot be a ticket id is None without a request."""
        assert (None, 0) == (await adapter.find_ticket("INC0010001"), len(api.calls))


class TestListNotes:
    async def test_visibility_is_deny_by_default(self, api, adapter) -> None:
        """Only Discussion without Internal is public; Resolution-only and no flags are unknown."""
        api.get("/service/tickets/4711/allNotes").mock(
            side_effect=[
                cw.respond(
                    [
                        cw.note(1, "discussion", discussion=True),
                        cw.note(2, "internal", internal=True),
                    ]
                ),
                cw.respond(
                    [
                        cw.note(3, "discussion+resolution", discussion=True, resolution=True),
                        cw.note(4, "internal+discussion", discussion=True, internal=True),
                    ]
                ),
                cw.respond(
                    [cw.note(5, "resolution only", resolution=True), cw.note(6, "no flags")]
                ),
                cw.respond([]),
            ]
        )
        notes = await adapter.list_notes("4711")
        expected = [
            ("1", Visibility.PUBLIC, "discussion"),
            ("2", Visibility.INTERNAL, "internal"),
            ("3", Visibility.PUBLIC, "discussion"),
            ("4", Visibility.INTERNAL, "internal"),
            ("5", Visibility.UNKNOWN, "resolution"),
            ("6", Visibility.UNKNOWN, None),
        ]
        assert expected == [(n.id, n.visibility, n.kind) for n in notes]

    async def test_since_reads_only_what_changed(self, api, adapter) -> None:
        """With since, allNotes is asked for the entries changed since then (UTC)."""
        route = api.get("/service/tickets/4711/allNotes").mock(return_value=cw.respond([]))
        since = datetime(2025, 3, 1, 10, 30, 5, 999, tzinfo=timezone(timedelta(hours=1)))
        await adapter.list_notes("4711", since=since)
        params = route.calls.last.request.url.params
        assert ("lastUpdated >= [2025-03-01T09:30:05Z]", "id asc") == (
            params["conditions"],
            params["orderBy"],
        )

    async def test_maps_a_note_oldest_first(self, api, adapter) -> None:
        """Notes are canonical Notes sorted by creation time; author falls back to createdBy."""
        route = api.get("/service/tickets/4711/allNotes").mock(
            side_effect=[
                cw.respond(
                    [
                        cw.note(9, "later", discussion=True, created="2025-03-01T11:00:00Z"),
                        cw.note(
                            3, "earlier", internal=True, created="2025-03-01T10:00:00Z", member={}
                        ),
                    ]
                ),
                cw.respond([]),
            ]
        )
        notes = await adapter.list_notes("4711")
        expected = [
            Note(
                system="cw",
                ticket_id="4711",
                id="3",
                text="earlier",
                visibility=Visibility.INTERNAL,
                created_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
                author="jsmith",
                kind="internal",
                sequence=3,
            ),
            Note(
                system="cw",
                ticket_id="4711",
                id="9",
                text="later",
                visibility=Visibility.PUBLIC,
                created_at=datetime(2025, 3, 1, 11, tzinfo=UTC),
                author="John Smith",
                kind="discussion",
                sequence=9,
            ),
        ]
        params = route.calls.last.request.url.params
        assert (expected, "id asc") == (notes, params["orderBy"])

    async def test_time_entries_are_notes_with_ids_of_their_own(self, api, adapter) -> None:
        """allNotes mixes notes and time entries, whose ids are a separate series: a time
        entry keeps its flags, its entry time, and an id that cannot equal a note's."""
        entry = {
            "id": 7,
            "noteType": "TimeEntryNote",
            "ticket": {"id": 4711, "summary": "Printer"},
            "text": "Replaced the fuser.",
            "detailDescriptionFlag": True,
            "internalAnalysisFlag": False,
            "resolutionFlag": False,
            "timeStart": "2025-03-01T09:00:00Z",
            "timeEnd": "2025-03-01T09:30:00Z",
            "member": {"id": 148, "identifier": "jsmith", "name": "John Smith"},
            "_info": {"lastUpdated": "2025-03-01T09:31:00Z", "dateEntered": "2025-03-01T09:31:00Z"},
        }
        api.get("/service/tickets/4711/allNotes").mock(
            side_effect=[cw.respond([cw.note(7, "A note", internal=True), entry]), cw.respond([])]
        )
        notes = await adapter.list_notes("4711")
        assert [
            ("7", Visibility.INTERNAL, datetime(2025, 3, 1, 9, 30, tzinfo=UTC)),
            ("time-7", Visibility.PUBLIC, datetime(2025, 3, 1, 9, 31, tzinfo=UTC)),
        ] == [(n.id, n.visibility, n.created_at) for n in notes]
        assert ("John Smith", "time entry, discussion") == (notes[1].author, notes[1].kind)


class TestAddNote:
    async def test_public_note(self, api, adapter) -> None:
        """PUBLIC is a Discussion note, no Resolution flag, no notifications; returns the id."""
        route = api.post("/service/tickets/4711/notes").mock(
            return_value=cw.respond(cw.note(77, discussion=True), 201)
        )
        note_id = await adapter.add_note(
            "4711", NoteDraft(f"Hello {MARKER}", Visibility.PUBLIC), KEY
        )
        expected = {
            "text": f"Hello {MARKER}",
            "detailDescriptionFlag": True,
            "internalAnalysisFlag": False,
            "resolutionFlag": False,
            "processNotifications": False,
        }
        assert ("77", expected) == (note_id, json.loads(route.calls.last.request.content))

    @pytest.mark.parametrize("visibility", [Visibility.INTERNAL, Visibility.UNKNOWN])
    async def test_internal_and_unknown_notes(self, api, adapter, visibility: Visibility) -> None:
        """INTERNAL and UNKNOWN are written as Internal notes."""
        route = api.post("/service/tickets/4711/notes").mock(
            return_value=cw.respond(cw.note(78, internal=True), 201)
        )
        await adapter.add_note("4711", NoteDraft(f"x {MARKER}", visibility), KEY)
        body = json.loads(route.calls.last.request.content)
        assert (True, False) == (body["internalAnalysisFlag"], body["detailDescriptionFlag"])

    async def test_text_is_written_as_drafted(self, api, adapter) -> None:
        """No marker is added: the text is written exactly as the engine drafted it."""
        route = api.post("/service/tickets/4711/notes").mock(
            return_value=cw.respond(cw.note(79, discussion=True), 201)
        )
        await adapter.add_note("4711", NoteDraft("Hello", Visibility.PUBLIC), KEY)
        assert "Hello" == json.loads(route.calls.last.request.content)["text"]

    async def test_server_error_is_uncertain_and_not_resent(self, api, adapter) -> None:
        """A 5xx on the write is TransientError(uncertain=True) after exactly one attempt."""
        route = api.post("/service/tickets/4711/notes").mock(
            return_value=cw.respond({"code": "InternalError"}, 503)
        )
        with pytest.raises(TransientError) as caught:
            await adapter.add_note("4711", NoteDraft(MARKER, Visibility.PUBLIC), KEY)
        assert (True, 503, 1) == (caught.value.uncertain, caught.value.status, route.call_count)

    async def test_connect_error_is_retried(self, api, adapter) -> None:
        """A refused connection proves the write was not applied, so it is retried."""
        route = api.post("/service/tickets/4711/notes").mock(
            side_effect=[
                httpx.ConnectError("refused"),
                cw.respond(cw.note(80, discussion=True), 201),
            ]
        )
        note_id = await adapter.add_note("4711", NoteDraft(MARKER, Visibility.PUBLIC), KEY)
        assert ("80", 2) == (note_id, route.call_count)

    async def test_answer_without_id_is_uncertain(self, api, adapter) -> None:
        """A 201 without an id leaves the write uncertain (look it up before resending)."""
        api.post("/service/tickets/4711/notes").mock(return_value=cw.respond({}, 201))
        with pytest.raises(TransientError) as caught:
            await adapter.add_note("4711", NoteDraft(MARKER, Visibility.PUBLIC), KEY)
        assert True is caught.value.uncertain


class TestFindNote:
    async def test_found_by_marker(self, api, adapter) -> None:
        """A draft carrying a marker (opted in) is found by that marker."""
        api.get("/service/tickets/4711/allNotes").mock(
            side_effect=[
                cw.respond([cw.note(1, "other"), cw.note(2, f"mirrored\n\n{MARKER}")]),
                cw.respond([]),
            ]
        )
        draft = NoteDraft(f"mirrored\n\n{MARKER}", Visibility.PUBLIC)
        assert "2" == await adapter.find_note("4711", KEY, draft)

    async def test_found_by_api_member_and_body(self, api) -> None:
        """Without a marker: the note the API member wrote with the same body (whitespace
        and HTML aside), not the technician's note with the same words."""
        adapter = cw.adapter(api_member="TicketBridgeAPI")
        api.get("/service/tickets/4711/allNotes").mock(
            side_effect=[
                cw.respond(
                    [
                        cw.note(1, "Engineer  dispatched"),
                        cw.note(
                            2, "<p>Engineer dispatched</p>", member=API, createdBy="TicketBridgeAPI"
                        ),
                    ]
                ),
                cw.respond([]),
            ]
        )
        draft = NoteDraft("Engineer dispatched", Visibility.PUBLIC)
        assert "2" == await adapter.find_note("4711", KEY, draft)
        await adapter.aclose()

    async def test_absent(self, api, adapter) -> None:
        """No note with the marker: None."""
        other = marker_for("fedcba9876543210", "a marker secret, 32 characters", "cw", "4711")
        api.get("/service/tickets/4711/allNotes").mock(return_value=cw.respond([cw.note(1, other)]))
        assert None is await adapter.find_note("4711", KEY, NoteDraft(MARKER, Visibility.PUBLIC))


class TestCreateTicket:
    async def test_refused(self, api, adapter) -> None:
        """ConnectWise is the PSA side: opening tickets there is a permanent error, no request."""
        with pytest.raises(PermanentError):
            await adapter.create_ticket(TicketDraft(summary="s", description="d"), KEY)
        assert (None, 0) == (await adapter.find_created(KEY), len(api.calls))


class TestUpdateTicket:
    async def test_status_is_looked_up_on_the_board(self, api, adapter) -> None:
        """A status name becomes the board's status id, sent as a whole reference."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        lookup = api.get("/service/boards/1/statuses").mock(
            return_value=cw.respond([cw.board_status(17, "In Progress")])
        )
        patch = api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        await adapter.update_ticket("4711", FieldChange(status="In Progress"))
        expected = (
            'name="In Progress"',
            [{"op": "replace", "path": "status", "value": {"id": 17}}],
        )
        actual = (
            lookup.calls.last.request.url.params["conditions"],
            json.loads(patch.calls.last.request.content),
        )
        assert expected == actual

    async def test_status_ids_are_cached_per_board(self, api, adapter) -> None:
        """The second update to the same status on the same board does not look it up again."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        lookup = api.get("/service/boards/1/statuses").mock(
            return_value=cw.respond([cw.board_status(17, "In Progress")])
        )
        patch = api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        await adapter.update_ticket("4711", FieldChange(status="In Progress"))
        await adapter.update_ticket("4711", FieldChange(status="In Progress"))
        assert (1, 2) == (lookup.call_count, patch.call_count)

    async def test_inactive_status_loses_to_active(self, api, adapter) -> None:
        """When the name matches an inactive and an active status, the active one is used."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        api.get("/service/boards/1/statuses").mock(
            return_value=cw.respond(
                [cw.board_status(5, "Waiting", inactive=True), cw.board_status(6, "Waiting")]
            )
        )
        patch = api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        await adapter.update_ticket("4711", FieldChange(status="Waiting"))
        assert {"id": 6} == json.loads(patch.calls.last.request.content)[0]["value"]

    async def test_same_values_write_nothing(self, api, adapter) -> None:
        """Compare before write: values the ticket already has send no PATCH and no lookups."""
        api.get("/service/tickets/4711").mock(
            return_value=cw.respond(cw.ticket(externalXRef="INC0010001"))
        )
        change = FieldChange(
            status="new", priority="Priority 3 - Normal Response", external_ref="INC0010001"
        )
        await adapter.update_ticket("4711", change)
        assert ["GET"] == [c.request.method for c in api.calls]

    async def test_unknown_status(self, api, adapter) -> None:
        """A status the board does not have is a permanent error and nothing is written."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        api.get("/service/boards/1/statuses").mock(return_value=cw.respond([]))
        with pytest.raises(PermanentError, match="Nonesuch"):
            await adapter.update_ticket("4711", FieldChange(status="Nonesuch"))

    async def test_status_with_a_quote_is_refused(self, api, adapter) -> None:
        """A name that cannot be quoted in conditions is refused rather than mis-sent."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        with pytest.raises(PermanentError):
            await adapter.update_ticket("4711", FieldChange(status='x" or id > "0'))

    async def test_priority_and_link_in_one_patch(self, api, adapter) -> None:
        """Priority (looked up by name) and externalXRef go out in a single PATCH."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        lookup = api.get("/service/priorities").mock(
            return_value=cw.respond([cw.priority(2, "Priority 2 - High")])
        )
        patch = api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        await adapter.update_ticket(
            "4711", FieldChange(priority="Priority 2 - High", external_ref="INC0010009")
        )
        expected = (
            'name="Priority 2 - High"',
            [
                {"op": "replace", "path": "priority", "value": {"id": 2}},
                {"op": "replace", "path": "externalXRef", "value": "INC0010009"},
            ],
        )
        actual = (
            lookup.calls.last.request.url.params["conditions"],
            json.loads(patch.calls.last.request.content),
        )
        assert expected == actual

    async def test_custom_field_sends_the_whole_array(self, api) -> None:
        """A custom link field is written by replacing customFields with one value changed."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        patch = api.patch("/service/tickets/4711").mock(side_effect=cw.patched)
        adapter = cw.adapter(link_field="custom:Vendor Ticket")
        try:
            await adapter.update_ticket("4711", FieldChange(external_ref="INC0010009"))
        finally:
            await adapter.aclose()
        fields = cw.ticket()["customFields"]
        fields[0]["value"] = "INC0010009"
        expected = [{"op": "replace", "path": "customFields", "value": fields}]
        assert expected == json.loads(patch.calls.last.request.content)

    async def test_missing_custom_field(self, api) -> None:
        """A configured custom field the ticket does not have is a permanent error."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        adapter = cw.adapter(link_field="custom:Nope")
        try:
            with pytest.raises(PermanentError, match="Nope"):
                await adapter.update_ticket("4711", FieldChange(external_ref="INC1"))
        finally:
            await adapter.aclose()

    async def test_empty_change_sends_nothing(self, api, adapter) -> None:
        """An empty change makes no request at all."""
        await adapter.update_ticket("4711", FieldChange())
        assert 0 == len(api.calls)

    async def test_patch_server_error_is_uncertain(self, api, adapter) -> None:
        """A 5xx on the PATCH is uncertain and not resent blindly."""
        api.get("/service/tickets/4711").mock(return_value=cw.respond(cw.ticket()))
        patch = api.patch("/service/tickets/4711").mock(return_value=cw.respond({}, 500))
        with pytest.raises(TransientError) as caught:
            await adapter.update_ticket("4711", FieldChange(external_ref="INC1"))
        assert (True, 1) == (caught.value.uncertain, patch.call_count)


class TestErrors:
    async def test_unauthorized(self, api, adapter) -> None:
        """401 is AuthFailedError, not retried."""
        route = api.get("/service/tickets/count").mock(
            return_value=cw.respond({"code": "Unauthorized", "message": "Bad credentials"}, 401)
        )
        with pytest.raises(AuthFailedError):
            await adapter.check()
        assert 1 == route.call_count

    async def test_rate_limited_then_ok(self, api, adapter) -> None:
        """429 with Retry-After is retried and the second answer is used."""
        route = api.get("/service/tickets/4711").mock(
            side_effect=[
                cw.respond(
                    {"error": "ConnectWiseAPI", "message": "Too many"}, 429, **{"Retry-After": "0"}
                ),
                cw.respond(cw.ticket(initialDescription="d")),
            ]
        )
        ticket = await adapter.get_ticket("4711")
        assert ("4711", 2) == (ticket.ref.id, route.call_count)

    async def test_rate_limited_carries_retry_after(self, api) -> None:
        """When retries run out, RateLimitedError carries the Retry-After seconds."""
        api.get("/service/tickets/count").mock(
            return_value=cw.respond({"error": "ConnectWiseAPI"}, 429, **{"Retry-After": "30"})
        )
        adapter = cw.adapter(retry=RetrySettings(attempts=1, wait_min=0, wait_max=0))
        try:
            with pytest.raises(RateLimitedError) as caught:
                await adapter.check()
        finally:
            await adapter.aclose()
        assert 30.0 == caught.value.retry_after

    async def test_server_error_on_read_is_retried(self, api, adapter) -> None:
        """A 5xx on a read is retried."""
        route = api.get("/service/tickets/4711").mock(
            side_effect=[cw.respond({}, 502), cw.respond(cw.ticket(initialDescription="d"))]
        )
        await adapter.get_ticket("4711")
        assert 2 == route.call_count


class TestWebhook:
    @staticmethod
    def _adapter(keys: KeyServer, **overrides) -> ConnectWiseAdapter:
        return cw.adapter(webhook_transport=keys.transport, **overrides)

    async def test_good_signature(self) -> None:
        """A callback signed with the key from key_url hints at its ticket."""
        keys = KeyServer()
        body = json.dumps(cw.callback()).encode()
        adapter = self._adapter(keys)
        try:
            hints = await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
        finally:
            await adapter.aclose()
        expected = [WebhookHint("4711", "9b1c0a9e-5b0e-4c59-9f43-2d8c0e3f4a11")]
        assert (expected, [cw.KEY_URL]) == (hints, [str(r.url) for r in keys.requests])

    async def test_the_signed_entity_comes_with_the_hint(self) -> None:
        """The callback's Entity is the ticket as saved: it comes with the hint (partial:
        no description shown); an Entity of another record or not JSON brings none."""
        keys = KeyServer()
        entity = json.dumps(cw.ticket(4711))
        bodies = [
            json.dumps(cw.callback(Entity=entity)).encode(),
            json.dumps(cw.callback(Entity=json.dumps(cw.ticket(815)))).encode(),
            json.dumps(cw.callback(Entity="{not json")).encode(),
        ]
        adapter = self._adapter(keys)
        try:
            hints = [
                (await adapter.webhook_hints(webhook(b, sign("s3cr3t-signing-key", b))))[0]
                for b in bodies
            ]
        finally:
            await adapter.aclose()
        first = hints[0].ticket
        assert first is not None
        assert ("4711", True, False) == (first.ref.id, first.partial, first.updated_at is None)
        assert [None, None] == [h.ticket for h in hints[1:]]

    async def test_signature_is_over_the_raw_bytes(self) -> None:
        """The signature is checked over the body bytes as received, not re-serialised JSON."""
        keys = KeyServer()
        body = json.dumps(cw.callback(), indent=2).encode()
        adapter = self._adapter(keys)
        try:
            compact = json.dumps(json.loads(body)).encode()
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", compact)))
        finally:
            await adapter.aclose()

    async def test_delivery_key_without_message_id(self) -> None:
        """Without MessageId the delivery key is the body's SHA-256."""
        keys = KeyServer()
        payload = cw.callback()
        del payload["MessageId"]
        body = json.dumps(payload).encode()
        adapter = self._adapter(keys)
        try:
            hints = await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
        finally:
            await adapter.aclose()
        assert [WebhookHint("4711", hashlib.sha256(body).hexdigest())] == hints

    async def test_record_id_fallback(self) -> None:
        """Without ID in the body the recordId query parameter names the ticket."""
        keys = KeyServer()
        body = json.dumps(cw.callback(None)).encode()
        adapter = self._adapter(keys)
        try:
            hints = await adapter.webhook_hints(
                webhook(body, sign("s3cr3t-signing-key", body), recordId="815")
            )
        finally:
            await adapter.aclose()
        assert ["815"] == [h.ticket_id for h in hints]

    async def test_no_ticket_id(self) -> None:
        """A verified Ticket callback with no usable id is a payload error."""
        keys = KeyServer()
        body = json.dumps(cw.callback("abc")).encode()
        adapter = self._adapter(keys)
        try:
            with pytest.raises(WebhookPayloadError):
                await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
        finally:
            await adapter.aclose()

    async def test_other_types_hint_nothing(self) -> None:
        """A verified callback about another record type yields no hints."""
        keys = KeyServer()
        body = json.dumps(cw.callback(Type="Company")).encode()
        adapter = self._adapter(keys)
        try:
            assert [] == await adapter.webhook_hints(
                webhook(body, sign("s3cr3t-signing-key", body))
            )
        finally:
            await adapter.aclose()

    async def test_wrong_signature(self) -> None:
        """A signature made with another key is refused."""
        keys = KeyServer()
        body = json.dumps(cw.callback()).encode()
        adapter = self._adapter(keys)
        try:
            with pytest.raises(WebhookAuthError, match="signature"):
                await adapter.webhook_hints(webhook(body, sign("not-the-key", body)))
        finally:
            await adapter.aclose()

    async def test_plain_key_as_hmac_key_is_refused(self) -> None:
        """HMAC keyed with the signing key itself (not its SHA-256) does not verify."""
        keys = KeyServer()
        body = json.dumps(cw.callback()).encode()
        raw = base64.b64encode(
            hmac.new(b"s3cr3t-signing-key", body, hashlib.sha256).digest()
        ).decode()
        adapter = self._adapter(keys)
        try:
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(webhook(body, raw))
        finally:
            await adapter.aclose()

    async def test_missing_signature_fetches_nothing(self) -> None:
        """No x-content-signature header: refused before any key is fetched."""
        keys = KeyServer()
        adapter = self._adapter(keys)
        try:
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(webhook(json.dumps(cw.callback()).encode(), None))
        finally:
            await adapter.aclose()
        assert [] == keys.requests

    async def test_missing_key_url(self) -> None:
        """A callback without Metadata.key_url cannot be verified."""
        keys = KeyServer()
        body = json.dumps(cw.callback(Metadata={})).encode()
        adapter = self._adapter(keys)
        try:
            with pytest.raises(WebhookAuthError, match="key_url"):
                await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
        finally:
            await adapter.aclose()

    @pytest.mark.parametrize(
        "key_url",
        [
            "https://127.0.0.1/key",
            "https://localhost/key",
            "https://169.254.169.254/latest/meta-data/iam",
            "https://evil.example/key",
            "https://api-na.myconnectwise.net.evil.example/key",
            "https://user:pw@api-na.myconnectwise.net/key",
            "https://api-na.myconnectwise.net@evil.example/key",
            "http://api-na.myconnectwise.net/key",
            "https://api-na.myconnectwise.net:8443/key",
            "file:///etc/passwd",
            "not a url",
        ],
    )
    async def test_forged_key_url_is_never_fetched(self, key_url: str) -> None:
        """key_url off the allowed https hosts (SSRF) is refused without a request."""
        keys = KeyServer({key_url: "s3cr3t-signing-key"})
        body = json.dumps(cw.callback(Metadata={"key_url": key_url})).encode()
        adapter = self._adapter(keys)
        try:
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
        finally:
            await adapter.aclose()
        assert [] == keys.requests

    async def test_allowed_key_hosts(self) -> None:
        """A host in allowed_key_hosts may serve keys."""
        url = "https://keys.partner.example/cb/1"
        keys = KeyServer({url: "k"})
        body = json.dumps(cw.callback(Metadata={"key_url": url})).encode()
        adapter = self._adapter(keys, allowed_key_hosts=["keys.partner.example"])
        try:
            hints = await adapter.webhook_hints(webhook(body, sign("k", body)))
        finally:
            await adapter.aclose()
        assert ["4711"] == [h.ticket_id for h in hints]

    async def test_http_sandbox_own_host_only(self) -> None:
        """With an http base URL, http key URLs on that host and port are allowed, others not."""
        base = "http://127.0.0.1:8090/v4_6_release/apis/3.0"
        good, other_port = "http://127.0.0.1:8090/keys/1", "http://127.0.0.1:8091/keys/1"
        keys = KeyServer({good: "k", other_port: "k"})
        adapter = cw.adapter(base_url=base, webhook_transport=keys.transport)
        try:
            body = json.dumps(cw.callback(Metadata={"key_url": good})).encode()
            hints = await adapter.webhook_hints(webhook(body, sign("k", body)))
            body = json.dumps(cw.callback(Metadata={"key_url": other_port})).encode()
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(webhook(body, sign("k", body)))
        finally:
            await adapter.aclose()
        assert (["4711"], [good]) == (
            [h.ticket_id for h in hints],
            [str(r.url) for r in keys.requests],
        )

    async def test_keys_are_cached(self) -> None:
        """Two callbacks with the same key_url fetch the key once."""
        keys = KeyServer()
        adapter = self._adapter(keys)
        try:
            for ticket_id in (1, 2):
                body = json.dumps(cw.callback(ticket_id)).encode()
                await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
        finally:
            await adapter.aclose()
        assert 1 == len(keys.requests)

    async def test_rotated_key_is_fetched_again(self) -> None:
        """A cached key that no longer verifies is fetched afresh once."""
        keys = KeyServer()
        adapter = self._adapter(keys)
        try:
            body = json.dumps(cw.callback(1)).encode()
            await adapter.webhook_hints(webhook(body, sign("s3cr3t-signing-key", body)))
            keys.keys[cw.KEY_URL] = "rotated-key"
            body = json.dumps(cw.callback(2)).encode()
            hints = await adapter.webhook_hints(webhook(body, sign("rotated-key", body)))
        finally:
            await adapter.aclose()
        assert (["2"], 2) == ([h.ticket_id for h in hints], len(keys.requests))

    @pytest.mark.parametrize(
        "answer",
        [
            httpx.Response(404, json={"code": "NotFound"}),
            httpx.Response(302, headers={"location": "http://169.254.169.254/"}),
            httpx.Response(200, content=b"<html/>"),
            httpx.Response(200, json={"key": "x"}),
        ],
    )
    async def test_bad_key_answer(self, answer: httpx.Response) -> None:
        """A key URL that does not answer 200 {"signing_key": ...} verifies nothing."""
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return answer

        adapter = cw.adapter(webhook_transport=httpx.MockTransport(handle))
        body = json.dumps(cw.callback()).encode()
        try:
            with pytest.raises(WebhookAuthError):
                await adapter.webhook_hints(webhook(body, sign("x", body)))
        finally:
            await adapter.aclose()
        assert 1 == len(seen)

    @pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
    async def test_malformed_body(self, body: bytes) -> None:
        """A body that is not a JSON object is a payload error."""
        adapter = self._adapter(KeyServer())
        try:
            with pytest.raises(WebhookPayloadError):
                await adapter.webhook_hints(webhook(body, "c2ln"))
        finally:
            await adapter.aclose()


class TestCallbackIntake:
    async def test_a_deeply_nested_callback_is_a_payload_error(self) -> None:
        """A callback body nested 100000 levels deep is malformed (400), fetching no key."""
        keys = KeyServer()
        adapter = cw.adapter(webhook_transport=keys.transport)
        body = b"[" * 100_000 + b"]" * 100_000
        try:
            with pytest.raises(WebhookPayloadError, match="nested"):
                await adapter.webhook_hints(webhook(body, "c2lnbmF0dXJl"))
        finally:
            await adapter.aclose()
        assert [] == keys.requests

    def test_the_precheck_refuses_a_callback_without_a_signature(self) -> None:
        """No x-content-signature header: refused from the headers alone."""
        adapter = cw.adapter()
        with pytest.raises(WebhookAuthError, match="x-content-signature"):
            adapter.webhook_precheck({"content-type": "application/json"}, {})
        adapter.webhook_precheck({"x-content-signature": "c2ln"}, {})


class TestSigningKeyFetches:
    """Forged callbacks naming an allowed key URL cost a bounded number of key fetches,
    counted at the simulator's key endpoint."""

    BASE = "http://cw.test"

    def _setup(self) -> tuple[ConnectWiseState, ConnectWiseAdapter]:
        state = ConnectWiseState(company_id=cw.COMPANY_ID)
        transport = httpx.ASGITransport(app=create_simulator(state, company_id=cw.COMPANY_ID))
        adapter = cw.adapter(
            base_url=f"{self.BASE}/v4_6_release/apis/3.0", webhook_transport=transport
        )
        return state, adapter

    def _body(self, key_id: str, ticket_id: int = 4711) -> bytes:
        url = f"{self.BASE}/_sandbox/callbacks/signing-key/{key_id}"
        return json.dumps(cw.callback(ticket_id, Metadata={"key_url": url})).encode()

    async def test_100_forged_callbacks_cost_at_most_two_fetches(self) -> None:
        """100 concurrent forged signatures naming the real key URL: at most two fetches (the
        key, one re-fetch in case it was rotated in place); a valid callback still verifies;
        after a rotation the new key URL's first callback verifies (one more fetch)."""
        state, adapter = self._setup()
        try:
            body = self._body(state.current_key_id)
            forged = [webhook(body, sign(f"guess-{n}", body)) for n in range(100)]
            results = await asyncio.gather(
                *(adapter.webhook_hints(request) for request in forged), return_exceptions=True
            )
            assert [] == [r for r in results if not isinstance(r, WebhookAuthError)]
            assert state.key_fetches <= 2
            valid = await adapter.webhook_hints(webhook(body, state.sign(body)))
            assert ["4711"] == [h.ticket_id for h in valid]
            assert state.key_fetches <= 2

            rotated = state.rotate_signing_key()
            body = self._body(rotated, 4712)
            after = await adapter.webhook_hints(webhook(body, state.sign(body, rotated)))
            assert ["4712"] == [h.ticket_id for h in after]
            assert state.key_fetches <= 3
        finally:
            await adapter.aclose()

    async def test_an_unknown_key_is_fetched_once(self) -> None:
        """A key URL that fails is remembered: 100 callbacks naming it cost one fetch."""
        state, adapter = self._setup()
        try:
            body = self._body("no-such-key")
            for _ in range(100):
                with pytest.raises(WebhookAuthError):
                    await adapter.webhook_hints(webhook(body, sign("guess", body)))
        finally:
            await adapter.aclose()
        assert 1 == state.key_fetches

    async def test_fetches_per_minute_are_bounded_and_logged_once(self) -> None:
        """100 callbacks naming 100 different key URLs: at most the per-minute budget of
        fetches; past it callbacks are refused with 503 and one warning is logged."""
        state, adapter = self._setup()
        try:
            with capture_logs() as logs:
                refused = []
                for n in range(100):
                    body = self._body(f"forged-{n}")
                    try:
                        await adapter.webhook_hints(webhook(body, sign("guess", body)))
                    except WebhookError as exc:
                        refused.append(exc.status_code)
        finally:
            await adapter.aclose()
        assert KEY_FETCHES_PER_MINUTE == state.key_fetches
        assert [401] * KEY_FETCHES_PER_MINUTE == refused[:KEY_FETCHES_PER_MINUTE]
        assert {503} == set(refused[KEY_FETCHES_PER_MINUTE:])
        warned = [e for e in logs if e["event"] == "callback_key_fetch_budget_spent"]
        assert 1 == len(warned)
