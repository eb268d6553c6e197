"""The contract every registered product passes, played through its simulator driver.

Parametrised over ``adapter_kinds()``: a new product passes it by registering an
adapter whose ``driver`` names a :class:`~ticketbridge.sandbox.driver.SimulatorDriver`.
Nothing here names a product; what differs per product is data its driver gives
(settings, sample changes, the note-writing request, its OpenAPI file).  Where the
OpenAPI file is present in ``shared/specs``, every request of the happy-path
checks is validated against it.
"""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.handlers import format_date_time

import httpx
import pytest

from tests.contract.spec import RecordingTransport, contract_for, specs_dir
from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.adapters.base import AdapterContext, Capability, NameKind, TicketAdapter
from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import RETRY_AFTER_CEILING, RetrySettings
from ticketbridge.clock import FakeClock
from ticketbridge.domain import (
    FieldChange,
    NoteDraft,
    TicketDraft,
    Visibility,
    WebhookRequest,
    marker_for,
    note_order,
)
from ticketbridge.errors import (
    AuthFailedError,
    CapabilityError,
    PermanentError,
    RateLimitedError,
    TransientError,
    WebhookAuthError,
)
from ticketbridge.sandbox.driver import SimulatorDriver, load_driver

pytestmark = [pytest.mark.contract, pytest.mark.anyio]

KEY = "0123456789abcdef"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FAST = RetrySettings(attempts=3, wait_min=0.01, wait_max=0.05, max_wait=5.0)
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
SETTABLE = {
    Capability.SET_STATUS,
    Capability.SET_PRIORITY,
    Capability.SET_FIELDS,
    Capability.ASSIGN,
}
#: A change needing exactly one capability, for refusal checks.
REFUSED_CHANGES = {
    Capability.SET_STATUS: FieldChange(status="In Progress"),
    Capability.SET_PRIORITY: FieldChange(priority="1"),
    Capability.SET_FIELDS: FieldChange(fields={"x": "y"}),
    Capability.ASSIGN: FieldChange(assignee="someone"),
}


class Wire(httpx.AsyncBaseTransport):
    """Real HTTP to the simulator: records each exchange and its time, runs hooks first."""

    def __init__(self) -> None:
        self.recording = RecordingTransport(httpx.AsyncHTTPTransport())
        self.sent_at: list[float] = []
        #: Called with the request's ordinal (1-based) before it is sent.
        self.before: list[Callable[[int], Awaitable[None]]] = []

    @property
    def exchanges(self) -> list[tuple[httpx.Request, httpx.Response | None]]:
        return self.recording.exchanges

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        ordinal = len(self.sent_at) + 1
        for hook in self.before:
            await hook(ordinal)
        self.sent_at.append(time.monotonic())
        return await self.recording.handle_async_request(request)

    async def aclose(self) -> None:
        await self.recording.aclose()


@pytest.fixture(params=adapter_kinds())
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def driver(
    kind: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[SimulatorDriver]:
    target = adapter_class(kind).driver
    assert target is not None, f"{kind} names no simulator driver (TicketAdapter.driver)"
    driver = load_driver(target)(clock=clock.now)
    assert kind == driver.kind
    check = getattr(request.node, "originalname", request.node.name)
    if check in driver.not_applicable:
        pytest.skip(f"does not apply to {kind}, because {driver.not_applicable[check]}")
    if check in driver.known_gaps:
        request.applymarker(pytest.mark.xfail(strict=True, reason=driver.known_gaps[check]))
    driver.start()
    yield driver
    await driver.stop()


@pytest.fixture
def wire() -> Wire:
    return Wire()


Make = Callable[..., TicketAdapter]


@pytest.fixture
async def make(driver: SimulatorDriver, wire: Wire) -> AsyncIterator[Make]:
    """``make(valid_credentials=True, budget=None, **settings)``: an adapter on the simulator."""
    made: list[TicketAdapter] = []

    def build(
        *, valid_credentials: bool = True, budget: RequestBudget | None = None, **settings: Any
    ) -> TicketAdapter:
        cls = adapter_class(driver.kind)
        system = driver.system(valid_credentials=valid_credentials, **settings)
        ctx = AdapterContext(
            name="system", base_url=system["base_url"], retry=FAST, transport=wire, budget=budget
        )
        adapter = cls(ctx, cls.settings_model.model_validate(system["settings"]))
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make: Make) -> TicketAdapter:
    return make()


def assert_fits_spec(driver: SimulatorDriver, wire: Wire) -> None:
    """Every request (and answer) so far validates against the product's OpenAPI file."""
    if driver.spec is None or specs_dir() is None:
        return
    report = contract_for(driver.spec).check(wire.exchanges, base_url=driver.base_url)
    assert [] == report.problems
    assert bool(report.checked) == bool(wire.exchanges) or bool(report.excluded)


async def writes(driver: SimulatorDriver) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in await driver.requests() if r["method"] in WRITES]


SECRET = "the contract suite's marker secret"


def marked(texts: list[str], key: str = KEY) -> int:
    """How many of ``texts`` carry the visible marker of ``key`` (any ticket's)."""
    return sum(f"[tb:{key}." in text for text in texts)


def said(texts: list[str], body: str) -> int:
    return sum(body in text for text in texts)


def draft(tid: str, text: str, *, visible_marker: bool, vis: Visibility = Visibility.PUBLIC):
    """A note as the dispatcher hands it over: with the signed marker only when opted in."""
    if visible_marker:
        text = f"{text}\n\n{marker_for(KEY, SECRET, 'system', tid)}"
    return NoteDraft(text, vis)


# -- incremental listing ---------------------------------------------------------------------
async def test_listing_is_inclusive_with_same_second_records(driver, adapter, wire, clock):
    """Three records of one second are all listed from that second; later, only what changed."""
    ids = [await driver.open_ticket(f"Same second {n}") for n in range(3)]
    listed = await adapter.changed_tickets(T0)
    assert set(ids) == {c.ticket_id for c in listed}
    assert {T0} == {c.updated_at for c in listed}

    clock.advance(1)
    await driver.touch(ids[1])
    later = await adapter.changed_tickets(T0 + timedelta(seconds=1))
    assert [(ids[1], T0 + timedelta(seconds=1))] == [(c.ticket_id, c.updated_at) for c in later]
    assert_fits_spec(driver, wire)


async def test_a_record_changed_during_paging_is_not_skipped(driver, make, wire, clock):
    """Between two page reads the first record changes; no record is skipped by the walk, and
    the change is seen in this walk or the next one."""
    adapter = make(**driver.small_pages)
    ids = [await driver.open_ticket(f"Paged {n}") for n in range(5)]
    clock.advance(1)
    touched: list[int] = []

    async def touch_first(ordinal: int) -> None:
        if ordinal == 2:
            await driver.touch(ids[0])
            touched.append(ordinal)

    wire.before.append(touch_first)
    walk = await adapter.changed_tickets(T0)
    wire.before.clear()
    assert [2] == touched
    assert set(ids) <= {c.ticket_id for c in walk}
    assert len(wire.exchanges) >= 3, "the walk read more than one page"

    after = max(c.updated_at for c in walk)
    seen_changed = {c.ticket_id for c in walk if c.updated_at > T0}
    seen_changed |= {c.ticket_id for c in await adapter.changed_tickets(after)}
    assert ids[0] in seen_changed
    assert_fits_spec(driver, wire)


# -- notes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("visible_marker", [False, True], ids=["no-marker", "marker"])
async def test_note_round_trip_by_key(driver, adapter, wire, visible_marker):
    """A note written with a key is found again, once, and read back through the adapter as
    ours; without the opt-in its text carries no marker at all."""
    tid = await driver.open_ticket("Round trip")
    note = draft(tid, "Hello from the MSP", visible_marker=visible_marker)
    written = await adapter.add_note(tid, note, KEY)
    found = await adapter.find_note(tid, KEY, note, T0)
    assert found is not None
    assert written in (None, found)
    other = draft(tid, "Something else entirely", visible_marker=False)
    assert None is await adapter.find_note(tid, "fedcba9876543210", other, T0)
    stored = [n.text for n in await driver.notes(tid)]
    assert 1 == said(stored, "Hello from the MSP")
    assert (1 if visible_marker else 0) == marked(stored)
    read = [n for n in await adapter.list_notes(tid) if "Hello from the MSP" in n.text]
    assert [True] == [n.by_us for n in read]
    assert_fits_spec(driver, wire)


async def test_same_second_notes_read_back_in_source_order(driver, adapter, wire):
    """Twenty notes written within one second (with ids as the product makes them: numbered,
    or random) read back in the order they were written, by the neutral note order."""
    tid = await driver.open_ticket("Same second notes")
    texts = [f"Step {n:02d} of the fix" for n in range(20)]
    for text in texts:
        await driver.add_note(tid, text, Visibility.PUBLIC)
    listed = [n for n in await adapter.list_notes(tid) if n.text in texts]
    assert 1 == len({n.created_at for n in listed}), "the notes share one second"
    assert texts == [n.text for n in sorted(listed, key=note_order)]
    assert texts == [n.text for n in listed], "listed oldest first, as the adapter promises"
    assert_fits_spec(driver, wire)


async def test_a_persons_note_with_our_words_is_not_ours(driver, adapter, wire):
    """A person writes the very text we wrote: read back, it is theirs (not written by the
    integration user), and looking up our write finds ours only."""
    tid = await driver.open_ticket("Same words")
    note = draft(tid, "Vendor engineer dispatched", visible_marker=False)
    written = await adapter.add_note(tid, note, KEY)
    await driver.add_note(tid, "Vendor engineer dispatched", Visibility.PUBLIC)
    read = [n for n in await adapter.list_notes(tid) if "Vendor engineer dispatched" in n.text]
    assert [True, False] == [n.by_us for n in read]
    assert read[0].id == await adapter.find_note(tid, KEY, note, T0)
    assert written in (None, read[0].id)
    assert_fits_spec(driver, wire)


async def test_a_persons_note_alone_is_not_found_as_our_write(driver, adapter):
    """Only a person wrote the text: our write is not there, so it is not found."""
    tid = await driver.open_ticket("Not ours")
    await driver.add_note(tid, "Vendor engineer dispatched", Visibility.PUBLIC)
    note = draft(tid, "Vendor engineer dispatched", visible_marker=False)
    assert None is await adapter.find_note(tid, KEY, note, T0)


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (Visibility.PUBLIC, Visibility.PUBLIC),
        (Visibility.INTERNAL, Visibility.INTERNAL),
        (Visibility.UNKNOWN, Visibility.INTERNAL),
    ],
)
async def test_visibility_outbound_is_deny_by_default(driver, adapter, wire, written, stored):
    """What ticketbridge writes is public only when asked to be; anything else is internal."""
    tid = await driver.open_ticket("Visibility out")
    await adapter.add_note(tid, NoteDraft("Status update", written), KEY)
    notes = [n for n in await driver.notes(tid) if "Status update" in n.text]
    assert [stored] == [n.visibility for n in notes]
    assert_fits_spec(driver, wire)


@pytest.mark.parametrize("visibility", [Visibility.PUBLIC, Visibility.INTERNAL])
async def test_visibility_inbound_is_deny_by_default(driver, adapter, wire, visibility):
    """A person's note reads public only when the product says public; never the other way."""
    tid = await driver.open_ticket("Visibility in")
    await driver.add_note(tid, "A person's note", visibility)
    read = [n for n in await adapter.list_notes(tid) if "A person's note" in n.text]
    assert 1 == len(read)
    assert (visibility is Visibility.PUBLIC) == read[0].visibility.is_public
    assert_fits_spec(driver, wire)


# -- writes -------------------------------------------------------------------------------------
async def test_a_no_op_update_sends_no_write(driver, adapter, wire):
    """Setting what the ticket already has sends no write request."""
    tid = await driver.open_ticket("No-op")
    ticket = await adapter.get_ticket(tid)
    await driver.clear_requests()
    await adapter.update_ticket(tid, FieldChange())
    same = {
        Capability.SET_STATUS: FieldChange(status=ticket.status),
        Capability.SET_PRIORITY: FieldChange(priority=ticket.priority),
    }
    for capability, change in same.items():
        if capability in adapter.capabilities:
            await adapter.update_ticket(tid, change)
    assert [] == await writes(driver)
    assert_fits_spec(driver, wire)


@pytest.mark.parametrize("visible_marker", [False, True], ids=["no-marker", "marker"])
async def test_an_uncertain_note_write_is_found_by_key_and_not_repeated(
    driver, adapter, visible_marker
):
    """The note is written but the answer is lost: the failure is uncertain, the note is found
    by its key (by author and body, or by the opted-in marker), and it exists once."""
    tid = await driver.open_ticket("Lost answer")
    method, path = driver.note_write
    await driver.clear_requests()
    await driver.add_faults([{"method": method, "path": path, "action": "apply_then_fail"}])
    note = draft(tid, "Once only", visible_marker=visible_marker)
    with pytest.raises(TransientError) as failed:
        await adapter.add_note(tid, note, KEY)
    assert failed.value.uncertain
    assert None is not await adapter.find_note(tid, KEY, note, T0)
    stored = [n.text for n in await driver.notes(tid)]
    assert 1 == said(stored, "Once only")
    assert (1 if visible_marker else 0) == marked(stored)
    sent = [r for r in await driver.requests(method) if re.search(path, r["path"])]
    assert ["apply_then_fail"] == [r["fault"] for r in sent]


async def test_an_uncertain_create_is_found_by_key_and_not_repeated(driver, adapter):
    """The ticket is opened but the answer is lost: it is found by key and exists once."""
    if Capability.CREATE_TICKET not in adapter.capabilities or driver.create_write is None:
        pytest.skip("the product does not open tickets (no CREATE_TICKET capability)")
    method, path = driver.create_write
    await driver.add_faults([{"method": method, "path": path, "action": "apply_then_fail"}])
    draft = TicketDraft(summary="Lost answer", description="Opened once.")
    with pytest.raises(TransientError) as failed:
        await adapter.create_ticket(draft, KEY)
    assert failed.value.uncertain
    ref = await adapter.find_created(KEY)
    assert ref is not None
    assert ref.id == await driver.find_created(KEY)
    sent = [r for r in await driver.requests(method) if re.search(path, r["path"])]
    assert 1 == len(sent)


#: 2xx answers that prove nothing, on a note write: ``(fault rule, whether it was applied)``.
UNPROVEN_ANSWERS = {
    "maintenance-page": ({"action": "garbage"}, False),
    "proxy-page-after-applying": ({"action": "apply_then_fail", "fail_with": "garbage"}, True),
    "empty-json-200": (
        {"action": "garbage", "body": "", "content_type": "application/json"},
        False,
    ),
    "wrong-shape-json-200": (
        {"action": "garbage", "body": "[]", "content_type": "application/json"},
        False,
    ),
}


@pytest.mark.parametrize("answer", list(UNPROVEN_ANSWERS))
async def test_a_2xx_that_proves_nothing_leaves_the_note_once(driver, adapter, answer):
    """A note write answered 2xx with an HTML page, an empty or a wrongly shaped body is not
    done: it is uncertain, and the next attempt (look up by key, then write) leaves the note
    exactly once at the target, whether the first write was applied or not."""
    tid = await driver.open_ticket("Unproven answer")
    rule, applied = UNPROVEN_ANSWERS[answer]
    method, path = driver.note_write
    await driver.add_faults([{"method": method, "path": path, **rule}])
    note = draft(tid, "Said once", visible_marker=False)
    with pytest.raises(TransientError) as failed:
        await adapter.add_note(tid, note, KEY)
    assert failed.value.uncertain
    assert int(applied) == said([n.text for n in await driver.notes(tid)], "Said once")
    # The next attempt, as the dispatcher makes it after an uncertain write.
    if await adapter.find_note(tid, KEY, note, T0) is None:
        await adapter.add_note(tid, note, KEY)
    assert 1 == said([n.text for n in await driver.notes(tid)], "Said once")


@pytest.mark.parametrize("capability", [Capability.SET_STATUS, Capability.SET_PRIORITY])
async def test_an_ignored_field_write_is_refused_naming_the_field(driver, adapter, capability):
    """The product answers 2xx but drops a field the integration user may not write (a field
    ACL): the write is not done, and the refusal names the field and the likely cause."""
    if capability not in adapter.capabilities:
        pytest.skip(f"the product does not declare {capability.value}")
    tid = await driver.open_ticket("Ignored field")
    before = await adapter.get_ticket(tid)
    change = driver.sample_changes(before)[capability.value]
    fields = driver.written_fields[capability.value]
    method, path = driver.update_write
    await driver.add_faults(
        [{"method": method, "path": path, "action": "ignore_fields", "fields": list(fields)}]
    )
    with pytest.raises(PermanentError) as refused:
        await adapter.update_ticket(tid, change)
    reason = str(refused.value)
    assert [] == [field for field in fields if field not in reason]
    assert "not allowed" in reason
    after = await adapter.get_ticket(tid)
    assert (before.status, before.priority) == (after.status, after.priority)
    assert ["ignore_fields"] == [r["fault"] for r in await driver.requests(method)][-1:]


async def test_an_ignored_public_note_write_is_refused_naming_the_field(driver, adapter):
    """The product answers 2xx to a note write but drops the field that makes it public: the
    write is not recorded as done, and the refusal names the field."""
    field = driver.public_note_field
    assert field is not None, "the driver names no public-note field"
    tid = await driver.open_ticket("Ignored note field")
    method, path = driver.note_write
    await driver.add_faults(
        [{"method": method, "path": path, "action": "ignore_fields", "fields": [field]}]
    )
    with pytest.raises(PermanentError) as refused:
        await adapter.add_note(tid, NoteDraft("For the customer", Visibility.PUBLIC), KEY)
    assert field in str(refused.value)


# -- webhooks, auth, rate limits, budget ------------------------------------------------------
async def test_webhook_auth(driver, adapter):
    """A correctly signed webhook names its ticket; a wrongly signed one is refused."""
    if Capability.WEBHOOKS not in adapter.capabilities:
        pytest.skip("the product takes no webhooks")
    tid = await driver.open_ticket("Webhook")
    valid, forged = driver.webhook(tid), driver.webhook(tid, valid=False)
    assert valid is not None
    assert forged is not None
    assert [tid] == [hint.ticket_id for hint in await adapter.webhook_hints(valid)]
    with pytest.raises(WebhookAuthError):
        await adapter.webhook_hints(forged)


async def test_401_is_an_auth_error(make):
    """Wrong credentials surface as AuthFailedError from the connection check."""
    adapter = make(valid_credentials=False)
    with pytest.raises(AuthFailedError):
        await adapter.check()


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_retry_after_is_honoured(driver, adapter, form):
    """A 429 asking to wait about a second (delta-seconds or HTTP date) is waited out."""
    if form == "seconds":
        retry_after = "1"
    else:
        retry_after = format_date_time((datetime.now(UTC) + timedelta(seconds=2)).timestamp())
    await driver.clear_requests()
    await driver.add_faults(
        [{"method": "GET", "path": ".*", "status": 429, "retry_after": retry_after}]
    )
    started = time.monotonic()
    await adapter.check()
    waited = time.monotonic() - started
    assert waited >= 0.9
    assert [429, 200] == [r["status"] for r in await driver.requests()][:2]


@pytest.mark.parametrize("retry_after", ["20", "inf", "1e12", "Tue, 01 Jan 2030 00:00:00 GMT"])
async def test_a_long_retry_after_on_a_write_is_handed_back_not_slept(driver, adapter, retry_after):
    """A 429 on a note write asking for 20 s (or forever, or until 2030) ends the call
    at once with a bounded wait for the caller to park the write; nothing is written
    and the request is not repeated inside the call."""
    tid = await driver.open_ticket("Throttled")
    method, path = driver.note_write
    await driver.clear_requests()
    await driver.add_faults(
        [{"method": method, "path": path, "status": 429, "retry_after": retry_after}]
    )
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as refused:
        await adapter.add_note(tid, NoteDraft("Later", Visibility.PUBLIC), KEY)
    assert time.monotonic() - started < 2.0
    assert refused.value.retry_after is not None
    assert 20.0 <= refused.value.retry_after <= RETRY_AFTER_CEILING
    assert 0 == marked([n.text for n in await driver.notes(tid)])
    sent = [r for r in await driver.requests(method) if re.search(path, r["path"])]
    assert [429] == [r["status"] for r in sent]


async def test_the_request_budget_is_never_exceeded(driver, make, wire):
    """With a budget of 4 requests per 0.5 s, no request goes out before its token exists."""
    tid = await driver.open_ticket("Budget")
    budget = RequestBudget(4, 0.5)
    adapter = make(budget=budget)
    for _ in range(10):
        await adapter.get_ticket(tid)
    sent = wire.sent_at
    assert len(sent) >= 10
    refill = budget.per_seconds / budget.requests
    late = [
        (i, round(at - sent[0], 3))
        for i, at in enumerate(sent)
        if at - sent[0] < (i + 1 - budget.requests) * refill - 0.01
    ]
    assert [] == late


# -- capabilities ---------------------------------------------------------------------------------
async def _exercise(
    capability: Capability, driver: SimulatorDriver, adapter: TicketAdapter
) -> None:
    tid = await driver.open_ticket(f"Capability {capability.value}")
    if capability is Capability.CREATE_TICKET:
        ref = await adapter.create_ticket(TicketDraft("Opened by ticketbridge", "Body"), KEY)
        assert ref == await adapter.find_created(KEY)
        assert ref.id == await driver.find_created(KEY)
    elif capability is Capability.ADD_NOTE:
        await adapter.add_note(tid, NoteDraft("A note", Visibility.INTERNAL), KEY)
        assert 1 == said([n.text for n in await driver.notes(tid)], "A note")
    elif capability is Capability.FIND_BY_NUMBER:
        ticket = await adapter.get_ticket(tid)
        assert ticket.ref.number is not None
        found = await adapter.find_ticket(ticket.ref.number)
        assert found is not None
        assert tid == found.ref.id
    elif capability is Capability.WEBHOOKS:
        request = driver.webhook(tid)
        assert request is not None, "the driver builds no webhook for a WEBHOOKS product"
        assert [tid] == [h.ticket_id for h in await adapter.webhook_hints(request)]
    elif capability in SETTABLE:
        ticket = await adapter.get_ticket(tid)
        change = driver.sample_changes(ticket).get(capability.value)
        assert change is not None, f"the driver gives no sample change for {capability.value}"
        await driver.clear_requests()
        await adapter.update_ticket(tid, change)
        assert [] != await writes(driver)
        after = await adapter.get_ticket(tid)
        if change.status is not None:
            assert change.status == after.status
        if change.priority is not None:
            assert change.priority == after.priority
    else:
        pytest.skip(f"ticketbridge has no operation for {capability.value} yet")


async def _refused(capability: Capability, driver: SimulatorDriver, adapter: TicketAdapter) -> None:
    tid = await driver.open_ticket(f"Refused {capability.value}")
    await driver.clear_requests()
    if capability is Capability.CREATE_TICKET:
        with pytest.raises(CapabilityError):
            await adapter.create_ticket(TicketDraft("Nope", "Nope"), KEY)
    elif capability is Capability.ADD_NOTE:
        with pytest.raises(CapabilityError):
            await adapter.add_note(tid, NoteDraft("Nope", Visibility.INTERNAL), KEY)
    elif capability is Capability.FIND_BY_NUMBER:
        with pytest.raises(CapabilityError):
            await adapter.find_ticket("1")
    elif capability is Capability.WEBHOOKS:
        request = WebhookRequest(headers={}, query={}, body=b"{}")
        with pytest.raises(WebhookAuthError):
            await adapter.webhook_hints(driver.webhook(tid) or request)
    elif capability in SETTABLE:
        with pytest.raises(CapabilityError):
            await adapter.update_ticket(tid, REFUSED_CHANGES[capability])
    else:
        pytest.skip(f"ticketbridge has no operation for {capability.value} yet")
    assert [] == await writes(driver)


@pytest.mark.parametrize("capability", list(Capability), ids=lambda c: c.value)
async def test_each_capability_works_or_is_refused(driver, adapter, wire, capability):
    """A declared capability works against the simulator; an undeclared one is refused
    (CapabilityError; webhooks: every request refused) and sends no write."""
    if capability in adapter.capabilities:
        await _exercise(capability, driver, adapter)
        assert_fits_spec(driver, wire)
    else:
        await _refused(capability, driver, adapter)


# -- names (check-config --online) ------------------------------------------------------------------
def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


async def test_name_lookup_knows_what_tickets_carry_and_writes_nothing(driver, adapter, wire):
    """Every kind a product answers is read from its API without error and holds the names
    its own tickets carry (a ticket's status, priority, queue); kinds it leaves out are
    reported as not checked by the core.  Nothing is written."""
    tid = await driver.open_ticket("Names")
    ticket = await adapter.get_ticket(tid)
    await driver.clear_requests()
    carried = {
        NameKind.STATUS: ticket.status,
        NameKind.PRIORITY: ticket.priority,
        NameKind.QUEUE: ticket.queue,
    }
    wanted = {kind: frozenset({"no such name"}) for kind in NameKind}
    answers = await adapter.lookup_names(wanted)
    assert set(answers) <= set(NameKind)
    for kind, answer in answers.items():
        assert answer.error is None, (kind, answer.error)
        assert answer.known, kind
        assert "no such name" not in {_fold(n) for n in answer.known}
        name = carried.get(kind)
        if name is not None:
            assert _fold(name) in {_fold(n) for n in answer.known}, (kind, name)
    assert [] == await writes(driver)


async def test_name_lookup_without_credentials_is_an_auth_error(driver, make):
    """Names are read with the configured credentials: refused ones are an auth error."""
    adapter = make(valid_credentials=False)
    wanted = {kind: frozenset({"x"}) for kind in NameKind}
    try:
        answers = await adapter.lookup_names(wanted)
    except AuthFailedError:
        return
    # a product may report the refusal per kind instead of raising
    assert all(a.error for a in answers.values())


# -- the suite itself -------------------------------------------------------------------------------
def test_the_suite_names_no_product() -> None:
    """Nothing product-specific lives here: no registered kind or product name appears."""
    source = Path(__file__).read_text(encoding="utf-8").casefold()
    names = set(adapter_kinds())
    names |= {adapter_class(kind).display_name.casefold() for kind in adapter_kinds()}
    named = sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", source))
    assert [] == named
