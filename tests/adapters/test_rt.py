"""RtAdapter against respx-canned REST2 answers shaped as RT 5.0.3 gives them."""

# Asserts read ``expected == actual`` (house style).
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.rt import RtAdapter, RtSettings
from ticketbridge.adapters.rt.adapter import html_to_text
from ticketbridge.adapters.rt.simulator import LOGIN_PAGE
from ticketbridge.domain import FieldChange, NoteDraft, StatusClass, Visibility
from ticketbridge.errors import AuthFailedError, PermanentError, TransientError

pytestmark = pytest.mark.anyio

ROOT = "https://rt.example.com/rt"
API = f"{ROOT}/REST/2.0"
FAST = RetrySettings(attempts=1, wait_min=0.0, wait_max=0.0)


@pytest.fixture
async def adapter() -> AsyncIterator[RtAdapter]:
    made = RtAdapter(
        AdapterContext(name="rt", base_url=ROOT, retry=FAST),
        RtSettings(token="1-2-secret", user="ticketbridge", queue="Vendor Support", page_size=2),
    )
    yield made
    await made.aclose()


def user(name: str) -> dict[str, str]:
    return {"id": name, "type": "user", "_url": f"{API}/user/{name}"}


def ticket(status: str = "new", **extra: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "Subject": "Printer on fire [ref 0123456789abcdef]",
        "Status": status,
        "Priority": "50",
        "Queue": {"id": "3", "type": "queue", "_url": f"{API}/queue/3"},
        "Owner": user("Nobody"),
        "Requestor": [user("servicedesk@msp.example")],
        "Created": "2026-11-22T23:56:12Z",
        "LastUpdated": "2026-11-22T23:58:00Z",
        **extra,
    }


def txn(ident: int, kind: str, creator: str, created: str, **extra: str) -> dict[str, Any]:
    return {
        "id": str(ident),
        "type": "transaction",
        "_url": f"{API}/transaction/{ident}",
        "Type": kind,
        "Creator": user(creator),
        "Created": created,
        **extra,
    }


def collection(items: list[dict[str, Any]], *, total: int | None = None, **extra: Any) -> Any:
    return {
        "count": len(items),
        "page": 1,
        "per_page": 2,
        "total": total,
        "pages": None,
        "items": items,
        **extra,
    }


@respx.mock
async def test_an_html_login_page_is_an_auth_error_naming_the_fix(adapter):
    """A 200 HTML login page (RT's web UI answering instead of REST2) names token and URL."""
    respx.get(f"{API}/ticket/7").respond(200, html=LOGIN_PAGE)
    with pytest.raises(AuthFailedError) as refused:
        await adapter.get_ticket("7")
    assert "login page" in str(refused.value)
    assert "settings.token" in str(refused.value)
    assert "base_url" in str(refused.value)


@respx.mock
async def test_a_redirect_to_the_login_page_is_an_auth_error(adapter):
    """RT's 302 to /rt/ (a Cookie or browser User-Agent with a bad token) is an auth error,
    and the adapter never sends a browser-like User-Agent."""
    route = respx.get(f"{API}/queue/Vendor%20Support").respond(302, headers={"Location": "/rt/"})
    with pytest.raises(AuthFailedError) as refused:
        await adapter.check()
    assert "redirect to its login page" in str(refused.value)
    sent = route.calls.last.request
    assert "mozilla" not in sent.headers["user-agent"].lower()
    assert "token 1-2-secret" == sent.headers["authorization"]


@respx.mock
async def test_an_html_page_that_is_not_the_login_is_transient(adapter):
    """Another HTML page on a read (a proxy's) is a transient failure naming base_url."""
    respx.get(f"{API}/ticket/7").respond(200, html="<html><title>Bad gateway</title></html>")
    with pytest.raises(TransientError) as failed:
        await adapter.get_ticket("7")
    assert "base_url" in str(failed.value)


@respx.mock
async def test_an_html_only_transaction_reads_as_text(adapter):
    """A message stored as text/html only reads as its text; a text/plain part wins when
    there is one; notification mails (EmailRecord) and files are no notes."""
    # a full page without a count: RT is asked for the next one, which is empty
    respx.get(f"{API}/transactions", params__contains={"page": "2"}).respond(json=collection([]))
    respx.get(f"{API}/transactions").respond(
        json=collection(
            [
                txn(40, "Create", "vendor.agent", "2026-11-22T23:56:12Z"),
                txn(42, "Correspond", "vendor.agent", "2026-11-22T23:57:00Z"),
            ]
        )
    )
    respx.get(f"{API}/ticket/7/attachments").respond(
        json=collection(
            [
                {"id": "9", "TransactionId": "43", "ContentType": "text/plain", "Content": "mail"},
                {
                    "id": "8",
                    "TransactionId": "42",
                    "ContentType": "text/plain",
                    "Content": "log",
                    "Filename": "log.txt",
                },
                {
                    "id": "7",
                    "TransactionId": "42",
                    "ContentType": "text/html",
                    "Content": "<p>Fixed &amp; <b>tested</b>.</p><p>Bye</p>",
                },
                {
                    "id": "1",
                    "TransactionId": "40",
                    "ContentType": "text/plain",
                    "Content": "It is on fire",
                },
            ],
            total=None,
        )
    )
    notes = await adapter.list_notes("7")
    assert [("40", "It is on fire"), ("42", "Fixed & tested.\n\nBye")] == [
        (n.id, n.text) for n in notes
    ]
    assert [Visibility.PUBLIC, Visibility.PUBLIC] == [n.visibility for n in notes]
    assert [False, False] == [n.by_us for n in notes]


def test_html_to_text_keeps_paragraphs_and_drops_tags() -> None:
    assert "Hello\nworld & you" == html_to_text("<div>Hello<br>world &amp; <i>you</i></div>")


@respx.mock
async def test_polling_sends_rts_date_format_and_follows_pages(adapter):
    """The TicketSQL date is 'YYYY-MM-DD HH:MM:SS' (never ISO, which RT reads as no limit),
    ordered by LastUpdated then id, and pages are followed while RT gives next_page."""
    pages = {
        "1": collection(
            [
                {"id": "1", "LastUpdated": "2026-11-22T23:57:02Z"},
                {"id": "2", "LastUpdated": "2026-11-22T23:57:03Z"},
            ],
            total=3,
            next_page=f"{API}/tickets?page=2",
        ),
        "2": collection([{"id": "3", "LastUpdated": "2026-11-22T23:57:04Z"}], total=3),
    }
    queries: list[dict[str, list[str]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        params = parse_qs(urlsplit(str(request.url)).query)
        queries.append(params)
        return httpx.Response(200, json=pages[params["page"][0]])

    respx.get(f"{API}/tickets").mock(side_effect=answer)
    since = datetime(2026, 11, 22, 23, 57, 2, 500000, tzinfo=UTC)
    changes = await adapter.changed_tickets(since)
    assert ["1", "2", "3"] == [c.ticket_id for c in changes]
    assert ["Queue = 'Vendor Support' AND LastUpdated >= '2026-11-22 23:57:02'"] == queries[0][
        "query"
    ]
    assert ["LastUpdated", "id"] == queries[0]["orderby"]
    assert ["2"] == queries[0]["per_page"]
    assert [["1"], ["2"]] == [q["page"] for q in queries]


@respx.mock
async def test_paging_without_a_count_reads_on_after_a_full_page(adapter):
    """RT gives no total or next_page to a user who is not a superuser: a full page is
    followed by another read, a short one ends the walk."""
    pages = {
        "1": collection(
            [
                txn(41, "Correspond", "a", "2026-11-22T23:57:00Z"),
                txn(42, "Comment", "a", "2026-11-22T23:57:00Z"),
            ]
        ),
        "2": collection([txn(43, "Correspond", "a", "2026-11-22T23:57:01Z")]),
    }
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        page = parse_qs(urlsplit(str(request.url)).query)["page"][0]
        seen.append(page)
        return httpx.Response(200, json=pages[page])

    respx.get(f"{API}/transactions").mock(side_effect=answer)
    respx.get(f"{API}/ticket/7/attachments").respond(
        json=collection(
            [
                {
                    "id": str(n),
                    "TransactionId": str(n),
                    "ContentType": "text/plain",
                    "Content": f"note {n}",
                }
                for n in (43, 42, 41)
            ]
        )
    )
    notes = await adapter.list_notes("7")
    assert ["1", "2"] == seen
    assert ["note 41", "note 42", "note 43"] == [n.text for n in notes]


@pytest.mark.parametrize(
    ("status_by", "replied_by", "expected"),
    [
        ("RT_System", "ticketbridge", StatusClass.NEW),  # RT reacting to our reply
        ("RT_System", "vendor.agent", StatusClass.WORKING),  # the vendor replied
        ("vendor.agent", "ticketbridge", StatusClass.WORKING),  # the vendor opened it
    ],
)
@respx.mock
async def test_rts_automatic_open_after_our_reply_is_not_the_vendors_move(
    adapter, status_by, replied_by, expected
):
    """``new -> open`` made by RT_System right after our correspondence keeps the class
    new (no acknowledgment by the vendor); any other open is the vendor's."""
    respx.get(f"{API}/ticket/7").respond(json=ticket("open"))
    respx.get(f"{API}/transactions").respond(
        json=collection(
            [
                txn(
                    44, "Status", status_by, "2026-11-22T23:58:00Z", OldValue="new", NewValue="open"
                ),
                txn(42, "Correspond", replied_by, "2026-11-22T23:57:59Z"),
            ]
        )
    )
    got = await adapter.get_ticket("7")
    assert ("open", expected) == (got.status, got.status_class)


@respx.mock
async def test_a_refused_status_is_a_permanent_error_with_rts_message(adapter):
    """RT answers 200 with a message for an unknown status; the re-read shows it kept."""
    respx.get(f"{API}/ticket/7").respond(json=ticket("new"))
    respx.put(f"{API}/ticket/7").respond(
        json=["Ticket 7: Status 'waiting' isn't a valid status for this ticket."]
    )
    with pytest.raises(PermanentError) as refused:
        await adapter.update_ticket("7", FieldChange(status="waiting"))
    assert "isn't a valid status" in str(refused.value)
    assert "Status" in str(refused.value)


@respx.mock
async def test_a_note_is_proven_by_rts_answer_and_location(adapter):
    """The transaction id comes from Location; an answer of the other kind is refused."""
    respx.post(f"{API}/ticket/7/correspond").respond(
        201, json=["Correspondence added"], headers={"Location": "/rt/REST/2.0/transaction/42"}
    )
    respx.post(f"{API}/ticket/7/comment").respond(
        201, json=["Correspondence added"], headers={"Location": "/rt/REST/2.0/transaction/43"}
    )
    assert "42" == await adapter.add_note("7", NoteDraft("Hi", Visibility.PUBLIC), "k")
    with pytest.raises(PermanentError) as refused:
        await adapter.add_note("7", NoteDraft("Psst", Visibility.INTERNAL), "k")
    assert "visibility" in str(refused.value)


# -- the simulator behaves as RT does where the adapter depends on it ---------------------------


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    from ticketbridge.adapters.rt.simulator import DEFAULT_TOKEN, RtWorld, create_app

    world = RtWorld(clock=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    transport = httpx.ASGITransport(app=create_app(world))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://sim/rt/REST/2.0",
        headers={"Authorization": f"token {DEFAULT_TOKEN}"},
    ) as client:
        yield client


async def test_simulated_ticketsql_is_strict_and_reads_iso_as_no_limit(sim):
    """Unknown fields and broken queries are 400s; an ISO date silently matches everything."""
    await sim.post("/ticket", json={"Queue": "Vendor Support", "Subject": "One"})

    async def search(query: str) -> httpx.Response:
        return await sim.get("/tickets", params={"query": query})

    assert 400 == (await search("Bogus = 'x'")).status_code
    assert 400 == (await search("Queue = 'Vendor Support' AND")).status_code
    assert 400 == (await search("Queue = Vendor")).status_code
    later = "LastUpdated >= '2026-01-06 00:00:00'"
    assert 0 == (await search(later)).json()["total"]
    assert 1 == (await search("LastUpdated >= '2026-01-06T00:00:00Z'")).json()["total"]


async def test_simulated_auto_open_and_auth(sim):
    """A correspondence opens a new or resolved ticket (by RT_System), not a stalled one;
    a bad token is 401, with a browser User-Agent a redirect to the login page."""
    tid = (await sim.post("/ticket", json={"Queue": "Vendor Support", "Subject": "S"})).json()
    path = f"/ticket/{tid['id']}"
    note = {"Content": "hi", "ContentType": "text/plain"}

    async def status() -> str:
        return str((await sim.get(path)).json()["Status"])

    await sim.post(f"{path}/comment", json=note)
    assert "new" == await status()
    await sim.post(f"{path}/correspond", json=note)
    assert "open" == await status()
    await sim.put(path, json={"Status": "stalled"})
    await sim.post(f"{path}/correspond", json=note)
    assert "stalled" == await status()
    await sim.put(path, json={"Status": "resolved"})
    await sim.post(f"{path}/correspond", json=note)
    assert "open" == await status()
    bad = {"Authorization": "token 1-1-wrong"}
    assert 401 == (await sim.get(path, headers=bad)).status_code
    redirect = await sim.get(path, headers={**bad, "User-Agent": "Mozilla/5.0"})
    assert (302, "/rt/") == (redirect.status_code, redirect.headers["location"])
