"""The fake product's own behaviour: in-process use, signed outbound webhooks, test seams."""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

import time

import anyio
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.fake import FakeAdapter, FakeSettings, FakeWorld, webhooks
from ticketbridge.adapters.fake.driver import FakeDriver
from ticketbridge.domain import FieldChange, Visibility, WebhookRequest
from ticketbridge.errors import TransientError, WebhookAuthError, WebhookPayloadError
from ticketbridge.sandbox import SandboxServer

pytestmark = pytest.mark.anyio


async def test_an_invalid_host_runs_an_in_process_simulator() -> None:
    """A base URL under .invalid needs no server: the adapter owns a fresh world."""
    adapter = FakeAdapter(AdapterContext("psa", "http://psa.invalid"), FakeSettings())
    try:
        adapter.world.add_ticket("psa", "Printer jam", status="New")
        changes = await adapter.changed_tickets(None)
        ticket = await adapter.get_ticket(changes[0].ticket_id)
    finally:
        await adapter.aclose()
    assert ("psa", "Printer jam", "New") == (ticket.ref.system, ticket.summary, ticket.status)


async def test_fail_next_after_apply_fails_once_the_write_is_done() -> None:
    world = FakeWorld()
    adapter = FakeAdapter(AdapterContext("v", "http://v.invalid"), FakeSettings(), world)
    ticket = world.add_ticket("v", "Slow VPN", status="New")
    adapter.fail_next("update_ticket", TransientError("lost", uncertain=True), after_apply=True)
    try:
        with pytest.raises(TransientError):
            await adapter.update_ticket(ticket.ref.id, FieldChange(status="Resolved"))
        await adapter.update_ticket(ticket.ref.id, FieldChange(status="Resolved"))
    finally:
        await adapter.aclose()
    assert "Resolved" == world.tickets[ticket.ref.id].status
    assert [("update_ticket", ticket.ref.id)] * 2 == world.calls


async def test_the_simulator_sends_signed_webhooks_the_adapter_accepts() -> None:
    """A person's change makes the simulator POST a webhook the adapter verifies."""
    received: list[WebhookRequest] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        received.append(WebhookRequest(headers=headers, query={}, body=await request.body()))
        return Response(status_code=202)

    driver = FakeDriver()
    driver.start()
    try:
        with SandboxServer(receiver) as server:
            await driver.send_webhooks_to(f"{server.url}/hook")
            tid = await driver.open_ticket("Webhook please")
            await driver.add_note(tid, "More detail", Visibility.PUBLIC)
            deadline = time.monotonic() + 5
            while len(received) < 2 and time.monotonic() < deadline:
                await anyio.sleep(0.02)
        system = driver.system()
        adapter = FakeAdapter(
            AdapterContext("lab", system["base_url"]),
            FakeSettings.model_validate(system["settings"]),
        )
        hints = [h for r in received for h in await adapter.webhook_hints(r)]
        await adapter.aclose()
    finally:
        await driver.stop()
    assert [tid, tid] == [h.ticket_id for h in hints]
    assert 2 == len({h.delivery_key for h in hints})


DEEP = b"[" * 100_000 + b"]" * 100_000


async def test_a_deeply_nested_webhook_body_is_a_payload_error() -> None:
    """A correctly signed body nested 100000 levels deep is malformed (400), not a crash."""
    headers = {webhooks.SIGNATURE_HEADER: webhooks.sign("s3cret", DEEP)}
    with pytest.raises(WebhookPayloadError, match="nested"):
        webhooks.hints(WebhookRequest(headers=headers, query={}, body=DEEP), "s3cret")


def test_the_precheck_refuses_an_unsigned_webhook_without_its_body() -> None:
    """No secret configured, or no signature header: refused from the headers alone."""
    with pytest.raises(WebhookAuthError):
        webhooks.precheck({webhooks.SIGNATURE_HEADER.lower(): "sha256=00"}, None)
    with pytest.raises(WebhookAuthError):
        webhooks.precheck({"content-type": "application/json"}, "s3cret")
    webhooks.precheck({webhooks.SIGNATURE_HEADER.lower(): "sha256=00"}, "s3cret")
