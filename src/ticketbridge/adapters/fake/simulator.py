"""The fake product's API: a minimal JSON REST API over a :class:`FakeWorld`.

Endpoints (bearer token auth; 401 otherwise)::

    GET   /api/tickets?updated_since=&after=&limit=   keyset pages of {id, updated_at}
    GET   /api/search?number=|correlation_id=|company=  full tickets
    POST  /api/tickets                                open a ticket (201)
    GET   /api/tickets/{id}                           one ticket (404 if none)
    PATCH /api/tickets/{id}                           set fields
    GET   /api/tickets/{id}/notes[?since=ISO time]    notes (created at/after since), oldest first
    POST  /api/tickets/{id}/notes                     add a note (201)

Listing pages are keyset pages ordered by ``(updated_at, id)``: a ticket
changed during a walk moves behind the cursor and is met again, never skipped.
``POST /_sandbox/outbound {"url", "secret"}`` makes every ticket change send a
signed webhook (see ``webhooks.py``).  A note written through the API is authored by
the API user (:data:`API_USER`); the sandbox header ``X-Sandbox-User: <name>`` makes a
call act as that person instead (to play a technician in demos and tests).  Faults and the request log come from the
simulator framework (``/_sandbox/faults``, ``/_sandbox/requests``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter

from ticketbridge.clock import utcnow
from ticketbridge.domain import Note, Ticket, TicketRef, Visibility
from ticketbridge.sandbox._faults import (
    FaultPlan,
    OutboundDispatcher,
    RequestLog,
    SandboxMiddleware,
    admin_router,
)

__all__ = ["DEFAULT_TOKEN", "LOGIN_HINT", "FakeWorld", "create_app", "note_json", "ticket_json"]

#: The user the bearer token belongs to: the author of every note written through the API.
API_USER = "ticketbridge"
DEFAULT_TOKEN = "fake-token"  # noqa: S105 - the simulator's well-known demo credential
LOGIN_HINT = f" (API at /api; bearer token {DEFAULT_TOKEN})"
TICKET_JSON = TypeAdapter(Ticket)
MAX_LIMIT = 1000


@dataclass
class FakeWorld:
    """The state behind one fake system; tests may change it directly, as a person would."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    notes: dict[str, list[Note]] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow
    #: Adapter operations called, ``(operation, first argument)`` (kept by the adapter).
    calls: list[tuple[str, str]] = field(default_factory=list)
    #: Scripted adapter failures (see ``FakeAdapter.fail_next``).
    failures: list[tuple[str, BaseException, bool]] = field(default_factory=list)
    #: Called with every ticket that changed (the simulator's webhooks).
    listeners: list[Callable[[Ticket], None]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def next_id(self) -> str:
        return str(next(self._ids))

    def add_ticket(self, system: str, summary: str, **fields: Any) -> Ticket:
        tid = self.next_id()
        now = self.now()
        ticket = Ticket(
            ref=TicketRef(system, tid, str(fields.pop("number", tid))),
            summary=summary,
            created_at=now,
            updated_at=now,
            **fields,
        )
        self.tickets[tid] = ticket
        self.notes[tid] = []
        self._changed(ticket)
        return ticket

    def change(self, ticket_id: str, **fields: Any) -> Ticket:
        ticket = replace(self.tickets[ticket_id], updated_at=self.now(), **fields)
        self.tickets[ticket_id] = ticket
        self._changed(ticket)
        return ticket

    def add_note(
        self,
        system: str,
        ticket_id: str,
        text: str,
        visibility: Visibility,
        author: str | None = None,
    ) -> Note:
        note = Note(
            system=system,
            ticket_id=ticket_id,
            id=self.next_id(),
            text=text,
            visibility=visibility,
            created_at=self.now(),
            author=author,
        )
        self.notes[ticket_id].append(note)
        self.change(ticket_id)
        return note

    def _changed(self, ticket: Ticket) -> None:
        for listener in self.listeners:
            listener(ticket)


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    data: dict[str, Any] = TICKET_JSON.dump_python(ticket, mode="json")
    return data


def note_json(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "text": note.text,
        "visibility": note.visibility.value,
        "created_at": note.created_at.isoformat(),
        "author": note.author,
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _error_renderer(status: int, body: Any) -> tuple[bytes, str]:
    return json.dumps(body if body is not None else {"error": f"status {status}"}).encode(), (
        "application/json"
    )


def _keyset(ticket: Ticket) -> tuple[datetime, int]:
    assert ticket.updated_at is not None
    return ticket.updated_at, int(ticket.ref.id)


def _cursor(ticket: Ticket) -> str:
    updated, tid = _keyset(ticket)
    return f"{updated.isoformat()}|{tid}"


def _page(world: FakeWorld, since: str | None, after: str | None, limit: int) -> dict[str, Any]:
    """One keyset page of ``(updated_at, id)`` after the cursor, at or after ``since``."""
    rows = sorted(world.tickets.values(), key=_keyset)
    if since:
        floor = datetime.fromisoformat(since)
        rows = [t for t in rows if _keyset(t)[0] >= floor]
    if after:
        stamp, _, tid = after.partition("|")
        cursor = (datetime.fromisoformat(stamp), int(tid))
        rows = [t for t in rows if _keyset(t) > cursor]
    chunk = rows[:limit]
    return {
        "items": [{"id": t.ref.id, "updated_at": _keyset(t)[0].isoformat()} for t in chunk],
        "next": _cursor(chunk[-1]) if len(rows) > limit else None,
    }


def create_app(world: FakeWorld | None = None, *, token: str = DEFAULT_TOKEN) -> FastAPI:
    """The fake product's simulator as an ASGI app (its world at ``app.state.world``)."""
    world = world if world is not None else FakeWorld()
    plan, log, outbound = FaultPlan(), RequestLog(), OutboundDispatcher()
    webhook: dict[str, str] = {}
    deliveries = itertools.count(1)

    def send_webhook(ticket: Ticket) -> None:
        if webhook:
            body = json.dumps({"ticket_id": ticket.ref.id, "delivery": str(next(deliveries))})
            digest = hmac.new(webhook["secret"].encode(), body.encode(), hashlib.sha256)
            headers = {"X-Fake-Signature": f"sha256={digest.hexdigest()}"}
            outbound.submit(webhook["url"], body.encode(), headers)

    world.listeners.append(send_webhook)
    app = FastAPI(title="Fake product", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world, app.state.faults, app.state.requests = world, plan, log
    app.add_middleware(SandboxMiddleware, plan=plan, log=log, error_renderer=_error_renderer)
    app.include_router(admin_router(plan, log))

    def authorize(request: Request) -> None:
        if request.headers.get("authorization", "") != f"Bearer {token}":
            raise HTTPException(401, "bad or missing bearer token")

    api = APIRouter(prefix="/api", dependencies=[Depends(authorize)])

    def ticket_or_404(ticket_id: str) -> Ticket | JSONResponse:
        return world.tickets.get(ticket_id) or _error(404, f"no ticket {ticket_id}")

    @api.get("/tickets")
    async def list_tickets(
        updated_since: str | None = None, after: str | None = None, limit: int = 100
    ) -> Any:
        return _page(world, updated_since, after, max(1, min(limit, MAX_LIMIT)))

    @api.get("/search")
    async def search(
        number: str | None = None,
        correlation_id: str | None = None,
        company: str | None = None,
    ) -> Any:
        hits = [
            t
            for t in world.tickets.values()
            if (number is None or t.ref.number == number)
            and (correlation_id is None or t.fields.get("correlation_id") == correlation_id)
            and (company is None or t.company == company)
        ]
        return {"items": [ticket_json(t) for t in hits]}

    @api.post("/tickets", status_code=201)
    async def open_ticket(request: Request) -> Any:
        body = await request.json()
        ticket = world.add_ticket(
            "fake",
            str(body["summary"]),
            description=str(body.get("description", "")),
            priority=body.get("priority"),
            status="New",
            fields={"correlation_id": body["correlation_id"]} if "correlation_id" in body else {},
            number=f"V{len(world.tickets) + 1:05d}",
        )
        return ticket_json(ticket)

    @api.get("/tickets/{ticket_id}")
    async def get_ticket(ticket_id: str) -> Any:
        found = ticket_or_404(ticket_id)
        return found if isinstance(found, JSONResponse) else ticket_json(found)

    @api.patch("/tickets/{ticket_id}")
    async def patch_ticket(ticket_id: str, request: Request) -> Any:
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        allowed = {"status", "priority", "external_ref", "queue", "assignee", "group", "fields"}
        changes = {k: v for k, v in (await request.json()).items() if k in allowed}
        return ticket_json(world.change(ticket_id, **changes) if changes else found)

    @api.get("/tickets/{ticket_id}/notes")
    async def list_notes(ticket_id: str, since: str | None = None) -> Any:
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        notes = world.notes[ticket_id]
        if since is not None:
            try:
                start = datetime.fromisoformat(since)
            except ValueError:
                return _error(400, f"since: not an ISO 8601 time: {since!r}")
            if start.tzinfo is None:
                return _error(400, "since: give a time zone (e.g. +00:00)")
            notes = [n for n in notes if n.created_at >= start]
        return {"items": [note_json(n) for n in notes]}

    @api.post("/tickets/{ticket_id}/notes", status_code=201)
    async def add_note(ticket_id: str, request: Request) -> Any:
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        body = await request.json()
        public = body.get("visibility") == Visibility.PUBLIC.value  # anything else: internal
        visibility = Visibility.PUBLIC if public else Visibility.INTERNAL
        author = request.headers.get("x-sandbox-user") or API_USER
        note = world.add_note("fake", ticket_id, str(body["text"]), visibility, author)
        return note_json(note)

    @app.post("/_sandbox/outbound")
    async def configure_outbound(request: Request) -> Response:
        webhook.clear()
        webhook.update({k: str(v) for k, v in (await request.json()).items()})
        return Response(status_code=204)

    app.include_router(api)
    return app
