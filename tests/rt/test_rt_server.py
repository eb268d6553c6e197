"""The RT adapter against a real Request Tracker 5 (one instance per run, tests/rt/conftest.py)."""

# Asserts read ``expected == actual`` (house style).
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.rt import RtAdapter, RtSettings
from ticketbridge.adapters.rt.driver import RtAgent
from ticketbridge.adapters.rt.local import LocalRt
from ticketbridge.domain import FieldChange, NoteDraft, StatusClass, TicketDraft, Visibility
from ticketbridge.errors import AuthFailedError, PermanentError

pytestmark = [pytest.mark.anyio, pytest.mark.rt, pytest.mark.integration]

FAST = RetrySettings(attempts=2, wait_min=0.01, wait_max=0.05)


def build(rt: LocalRt, *, base_url: str | None = None, **settings: Any) -> RtAdapter:
    values = {"token": rt.token, "user": rt.user, "queue": rt.queue, "requestor": rt.requestor}
    values.update(settings)
    ctx = AdapterContext(name="vendor-rt", base_url=base_url or rt.base_url, retry=FAST, timeout=15)
    return RtAdapter(ctx, RtSettings.model_validate(values))


@pytest.fixture
async def adapter(live_rt: LocalRt) -> AsyncIterator[RtAdapter]:
    made = build(live_rt)
    yield made
    await made.aclose()


@pytest.fixture
async def agent(live_rt: LocalRt) -> AsyncIterator[RtAgent]:
    person = RtAgent(live_rt.base_url, live_rt.agent_token, live_rt.queue, live_rt.requestor)
    yield person
    await person.aclose()


async def next_second() -> datetime:
    """Wait until RT's clock (1 s resolution) has moved on; return the new second."""
    now = datetime.now(UTC)
    await asyncio.sleep(1.05 - now.microsecond / 1e6)
    return datetime.now(UTC).replace(microsecond=0)


async def test_create_is_found_by_key_and_shows_as_opened(adapter, agent, live_rt):
    """The ticket opens in the queue with the requestor, and its key finds it again."""
    ref = await adapter.create_ticket(
        TicketDraft("Printer on fire", "It is on fire.\nPlease help.", priority="50"),
        "00000000000000a1",
    )
    assert ref == await adapter.find_created("00000000000000a1")
    assert None is await adapter.find_created("00000000000000a2")
    ticket = await adapter.get_ticket(ref.id)
    # RT 5 shows priority 50 as "Medium" (%PriorityAsString)
    assert ("new", StatusClass.NEW, "Medium") == (
        ticket.status,
        ticket.status_class,
        ticket.priority,
    )
    assert ticket.summary.startswith("Printer on fire [ref 00000000000000a1]")
    assert live_rt.requestor == (ticket.contact.email if ticket.contact else None)
    notes = await adapter.list_notes(ref.id)
    assert [("Create", "It is on fire.\nPlease help.", True)] == [
        (n.kind, n.text, n.by_us) for n in notes
    ]


async def test_correspond_is_public_and_comment_internal(adapter, agent, live_rt):
    """A public note is a correspondence, an internal one a comment, as the agent sees."""
    tid = await agent.open_ticket("Visibility")
    public = await adapter.add_note(tid, NoteDraft("For everyone", Visibility.PUBLIC), "k1")
    internal = await adapter.add_note(tid, NoteDraft("Just us", Visibility.INTERNAL), "k2")
    unknown = await adapter.add_note(tid, NoteDraft("Unsure", Visibility.UNKNOWN), "k3")
    seen = await agent.notes(tid)
    assert [
        ("Correspond", live_rt.user, "For everyone"),
        ("Comment", live_rt.user, "Just us"),
        ("Comment", live_rt.user, "Unsure"),
    ] == [(k, c, t.strip()) for k, c, t in seen]
    read = {n.id: n for n in await adapter.list_notes(tid)}
    assert Visibility.PUBLIC == read[str(public)].visibility
    assert Visibility.INTERNAL == read[str(internal)].visibility
    assert Visibility.INTERNAL == read[str(unknown)].visibility
    found = await adapter.find_note(
        tid,
        "k1",
        NoteDraft("For everyone", Visibility.PUBLIC),
        datetime.now(UTC) - timedelta(minutes=1),
    )
    assert public == found


async def test_an_agents_transactions_read_as_notes(adapter, agent):
    """The agent's reply and comment are notes by someone else, with their visibility;
    the notification mails RT records (EmailRecord) are not notes."""
    tid = await agent.open_ticket("Agent writes")
    await agent.note(tid, "We are on it", Visibility.PUBLIC)
    await agent.note(tid, "Escalate to L2", Visibility.INTERNAL)
    notes = await adapter.list_notes(tid)
    assert [
        ("Correspond", "We are on it", Visibility.PUBLIC, False),
        ("Comment", "Escalate to L2", Visibility.INTERNAL, False),
    ] == [(n.kind, n.text, n.visibility, n.by_us) for n in notes]
    assert ["vendor.agent", "vendor.agent"] == [n.author for n in notes]
    assert sorted(n.sequence for n in notes) == [n.sequence for n in notes]


async def test_an_html_only_transaction_is_read_as_text(adapter, agent):
    """A message whose only content is HTML reads as its text, without tags."""
    tid = await agent.open_ticket("HTML")
    await agent.note(
        tid,
        "<p>Dear customer,</p><p>the <b>router</b> was replaced &amp; tested.</p>",
        Visibility.PUBLIC,
        content_type="text/html",
    )
    notes = await adapter.list_notes(tid)
    assert 1 == len(notes)
    assert "<" not in notes[0].text
    assert "Dear customer," in notes[0].text
    assert "the router was replaced & tested." in notes[0].text


async def test_incremental_listing_on_last_updated(adapter, agent, live_rt):
    """Polling from a second lists the tickets changed since then and no other; notes
    read since then are only the new ones."""
    quiet = await agent.open_ticket("Quiet")
    busy = await agent.open_ticket("Busy")
    await agent.note(busy, "Before", Visibility.PUBLIC)
    since = await next_second()
    await agent.note(busy, "After", Visibility.PUBLIC)
    changed = await adapter.changed_tickets(since)
    ids = [c.ticket_id for c in changed]
    assert busy in ids
    assert quiet not in ids
    assert all(c.updated_at >= since for c in changed)
    assert ["After"] == [n.text for n in await adapter.list_notes(busy, since)]
    # paging: pages of two list every ticket, oldest first
    small = build(live_rt, page_size=2)
    try:
        everything = await small.changed_tickets(None)
    finally:
        await small.aclose()
    assert {quiet, busy} <= {c.ticket_id for c in everything}
    assert sorted(everything, key=lambda c: c.updated_at) == everything


async def test_rts_automatic_status_changes(adapter, agent):
    """RT opens a new ticket when we correspond (not the vendor's doing: still class new),
    keeps a stalled one stalled, reopens a resolved one; the agent's own reply on a new
    ticket is the vendor acting (working)."""
    tid = await agent.open_ticket("Auto status")
    await adapter.add_note(tid, NoteDraft("Any news?", Visibility.PUBLIC), "s1")
    ticket = await adapter.get_ticket(tid)
    assert ("open", StatusClass.NEW) == (ticket.status, ticket.status_class)
    assert "new" == ticket.fields.get("auto_status_from")
    await adapter.add_note(tid, NoteDraft("Internal", Visibility.INTERNAL), "s2")
    assert StatusClass.NEW == (await adapter.get_ticket(tid)).status_class

    await agent.set(tid, Status="stalled")
    await adapter.add_note(tid, NoteDraft("Here is the log", Visibility.PUBLIC), "s3")
    ticket = await adapter.get_ticket(tid)
    assert ("stalled", StatusClass.WAITING_ON_CUSTOMER) == (ticket.status, ticket.status_class)

    await agent.set(tid, Status="resolved")
    await adapter.add_note(tid, NoteDraft("Still broken", Visibility.PUBLIC), "s4")
    ticket = await adapter.get_ticket(tid)
    assert ("open", StatusClass.WORKING) == (ticket.status, ticket.status_class)

    other = await agent.open_ticket("Agent answers first")
    await agent.note(other, "Looking into it", Visibility.PUBLIC)
    ticket = await adapter.get_ticket(other)
    assert ("open", StatusClass.WORKING) == (ticket.status, ticket.status_class)


async def test_status_and_priority_writes_are_proven(adapter, agent):
    """Status and priority are set; an unknown status (RT answers 200) is refused with
    RT's message; setting what the ticket has changes nothing."""
    tid = await agent.open_ticket("Writes")
    await adapter.update_ticket(tid, FieldChange(status="open", priority="80"))
    ticket = await adapter.get_ticket(tid)
    assert ("open", "80", 1) == (ticket.status, ticket.priority, ticket.priority_rank)
    with pytest.raises(PermanentError) as refused:
        await adapter.update_ticket(tid, FieldChange(status="bogus"))
    assert "isn't a valid status" in str(refused.value)
    before = (await agent.ticket(tid))["LastUpdated"]
    await adapter.update_ticket(tid, FieldChange(status="open", priority="80"))
    assert before == (await agent.ticket(tid))["LastUpdated"]
    await adapter.update_ticket(tid, FieldChange(status="resolved"))
    resolved = await adapter.get_ticket(tid)
    assert (StatusClass.RESOLVED, True) == (resolved.status_class, resolved.closed)
    found = await adapter.find_ticket(tid)
    assert found is not None
    assert tid == found.ref.id
    assert None is await adapter.find_ticket("999999")


async def test_a_bad_token_is_an_auth_error_naming_the_fix(live_rt):
    """A wrong token is refused (401) with the setting to fix named."""
    bad = build(live_rt, token="1-99-00000000000000000000000000000000")
    try:
        with pytest.raises(AuthFailedError) as refused:
            await bad.check()
    finally:
        await bad.aclose()
    assert "settings.token" in str(refused.value)


class _WithCookie(httpx.AsyncBaseTransport):
    """A proxy that adds a session cookie to every request (as browsers' SSO proxies do)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Cookie"] = "RT_SID_x=expired"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_rts_login_page_is_an_auth_error_naming_the_fix(live_rt):
    """With a cookie RT answers a bad token with a redirect to its login page, and a base
    URL that is not RT's web root reaches the web UI's login: both are auth errors that
    say what to check, never a retried transient failure."""
    ctx = AdapterContext(
        name="vendor-rt", base_url=live_rt.base_url, retry=FAST, transport=_WithCookie()
    )
    settings = RtSettings(
        token="1-99-00000000000000000000000000000000", user=live_rt.user, queue=live_rt.queue
    )
    cookie = RtAdapter(ctx, settings)
    wrong_root = build(
        live_rt,
        base_url=f"{live_rt.base_url}/Ticket",
        token="1-99-00000000000000000000000000000000",
    )
    try:
        for adapter in (cookie, wrong_root):
            with pytest.raises(AuthFailedError) as refused:
                await adapter.get_ticket("1")
            assert "login page" in str(refused.value)
            assert "base_url" in str(refused.value)
    finally:
        await cookie.aclose()
        await wrong_root.aclose()
