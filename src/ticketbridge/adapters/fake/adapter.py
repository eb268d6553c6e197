"""The fake product's adapter: the smallest complete HTTP adapter, to copy from.

It speaks the fake product's JSON API (``simulator.py``) through the kit's
:class:`~ticketbridge.adapters.kit.http.HttpClient`: bearer auth, keyset paging
for incremental listing, look-ups of its own writes (author and body hash), a no-op update
that sends nothing, writes proven by their answers (``kit/proof.py``: the JSON
record we wrote, showing what we sent), and HMAC-signed webhooks (``webhooks.py``).

Built with a :class:`FakeWorld` (or a base URL under the reserved ``.invalid``
domain, which nothing answers), it reaches an in-process simulator over that
world through ``httpx.ASGITransport``: engine tests stay fast and change the
world directly.  :meth:`FakeAdapter.fail_next` scripts failures for them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from ticketbridge.adapters.base import (
    AdapterContext,
    AdapterSettings,
    Capability,
    TicketAdapter,
)
from ticketbridge.adapters.fake import defaults, webhooks
from ticketbridge.adapters.fake.simulator import (
    API_USER,
    DEFAULT_TOKEN,
    TICKET_JSON,
    FakeWorld,
    create_app,
)
from ticketbridge.adapters.kit.http import HttpClient, decode_json
from ticketbridge.adapters.kit.paging import CursorPaging, Page, latest_per_ticket
from ticketbridge.adapters.kit.payload import bad_shape, expect_object
from ticketbridge.adapters.kit.proof import check_record, check_written
from ticketbridge.domain import (
    ChangeBatch,
    FieldChange,
    Note,
    NoteDraft,
    Side,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketRef,
    Visibility,
    WebhookHint,
    WebhookRequest,
)

__all__ = ["FakeAdapter", "FakeSettings", "FakeWorld"]

P = ParamSpec("P")
R = TypeVar("R")


class FakeSettings(AdapterSettings):
    """``systems.<name>.settings`` of a fake system."""

    sides: list[Side] = [Side.PSA, Side.VENDOR]
    token: SecretStr = SecretStr(DEFAULT_TOKEN)
    #: Shared secret of the signed webhooks; without it every webhook is refused.
    webhook_secret: SecretStr | None = None
    page_size: int = 100
    #: The user the token belongs to (the author of the notes ticketbridge writes).
    api_user: str = API_USER


def _scripted(
    operation: Callable[Concatenate[FakeAdapter, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[FakeAdapter, P], Coroutine[Any, Any, R]]:
    """Record the call in ``world.calls`` and raise what :meth:`FakeAdapter.fail_next` scripted."""
    name = operation.__name__

    @functools.wraps(operation)
    async def call(self: FakeAdapter, /, *args: P.args, **kwargs: P.kwargs) -> R:
        ref = next((a for a in args if isinstance(a, str)), "")
        self.world.calls.append((name, ref))
        self._raise_scripted(name, after_apply=False)
        result = await operation(self, *args, **kwargs)
        self._raise_scripted(name, after_apply=True)
        return result

    return call


class FakeAdapter(TicketAdapter):
    kind = "fake"
    display_name = "Fake"
    sides = frozenset({Side.PSA, Side.VENDOR})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.WEBHOOKS,
            Capability.CREATE_TICKET,
            Capability.ADD_NOTE,
            Capability.SET_STATUS,
            Capability.SET_PRIORITY,
            Capability.SET_FIELDS,
            Capability.ASSIGN,
            Capability.FIND_BY_NUMBER,
        }
    )
    settings_model = FakeSettings
    simulator: ClassVar[str | None] = "ticketbridge.adapters.fake.simulator:create_app"
    driver: ClassVar[str | None] = "ticketbridge.adapters.fake.driver:FakeDriver"
    status_classes = defaults.STATUS_CLASSES
    priority_ranks = defaults.PRIORITY_RANKS
    field_aliases = defaults.FIELD_ALIASES
    closing_terms = defaults.CLOSING_TERMS

    def __init__(
        self, ctx: AdapterContext, settings: AdapterSettings, world: FakeWorld | None = None
    ) -> None:
        if not isinstance(settings, FakeSettings):
            raise TypeError(f"expected FakeSettings, got {type(settings).__name__}")
        self.fake = settings
        in_process = world is not None or httpx.URL(ctx.base_url).host.endswith(".invalid")
        self.world = world if world is not None else FakeWorld()
        if in_process and ctx.transport is None:
            app = create_app(self.world, token=settings.token.get_secret_value())
            ctx = replace(ctx, transport=httpx.ASGITransport(app=app))
        super().__init__(ctx, settings)

    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        return HttpClient(
            system=ctx.name,
            base_url=ctx.base_url,
            headers={"Authorization": f"Bearer {self.fake.token.get_secret_value()}"},
            timeout=ctx.timeout,
            retry=ctx.retry,
            transport=ctx.transport,
        )

    # -- a test seam -----------------------------------------------------------------
    def fail_next(self, operation: str, exc: BaseException, *, after_apply: bool = False) -> None:
        """Make the next call of ``operation`` raise ``exc`` (after doing it, if asked)."""
        self.world.failures.append((operation, exc, after_apply))

    def _raise_scripted(self, operation: str, *, after_apply: bool) -> None:
        for i, (op, exc, after) in enumerate(self.world.failures):
            if op == operation:
                if after == after_apply:
                    del self.world.failures[i]
                    raise exc
                return

    # -- translation -------------------------------------------------------------------
    def _ticket(self, data: Any) -> Ticket:
        """A ticket as the simulator serves it, classed by the merged status and rank maps."""
        ticket = TICKET_JSON.validate_python(data)
        return replace(
            ticket,
            ref=replace(ticket.ref, system=self.name),
            status_class=self.status_class_of(ticket.status) or ticket.status_class,
            priority_rank=self.priority_rank_of(ticket.priority) or ticket.priority_rank,
        )

    def _note(self, ticket_id: str, data: dict[str, Any], position: int = 0) -> Note:
        """A note as served; the fake keeps notes in the order written (``position``)."""
        public = data.get("visibility") == Visibility.PUBLIC.value  # anything else: internal
        return Note(
            system=self.name,
            ticket_id=ticket_id,
            id=str(data["id"]),
            text=str(data["text"]),
            visibility=Visibility.PUBLIC if public else Visibility.INTERNAL,
            created_at=datetime.fromisoformat(data["created_at"]),
            author=data.get("author"),
            sequence=position,
            by_us=data.get("author") == self.fake.api_user,
        )

    def _written_ticket(self, answer: Any, where: str) -> Ticket:
        """The ticket a write answered with; any other answer leaves the write unproven."""
        try:
            return self._ticket(expect_object(answer, self.name, where, uncertain=True))
        except ValidationError:
            raise bad_shape(self.name, where, "$ is not a ticket", uncertain=True) from None

    async def _search(self, **query: str) -> list[Ticket]:
        found = await self.http.json("GET", "/api/search", params=query)
        return [self._ticket(item) for item in found["items"]]

    # -- reads ---------------------------------------------------------------------------
    @_scripted
    async def check(self) -> None:
        await self.http.request("GET", "/api/tickets", params={"limit": 1})

    @_scripted
    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        return list((await self._walk(since, None, None)).changes)

    @_scripted
    async def changes_after(
        self, since: datetime | None, after: str | None = None, *, max_pages: int | None = None
    ) -> ChangeBatch:
        return await self._walk(since, after, max_pages)

    async def _walk(
        self, since: datetime | None, after: str | None, max_pages: int | None
    ) -> ChangeBatch:
        """Walk the simulator's keyset pages with the kit's cursor paging."""
        first: dict[str, Any] = {"limit": self.fake.page_size}
        if since is not None:
            first["updated_since"] = since.isoformat()
            if after is not None:
                first["after"] = f"{since.isoformat()}|{after}"

        async def fetch(params: Mapping[str, Any]) -> Page:
            resp = await self.http.request("GET", "/api/tickets", params=params)
            body = decode_json(resp, self.name)
            return Page(list(body["items"]), resp)

        def next_params(page: Page) -> Mapping[str, Any] | None:
            cursor = page.response.json()["next"]
            return {**first, "after": cursor} if cursor else None

        paging = CursorPaging(
            first=first,
            next_params=next_params,
            system=self.name,
            where="GET /api/tickets",
            key=lambda item: str(item["id"]),
            **({"max_pages": max_pages} if max_pages is not None else {}),
        )
        rows = await paging.walk(fetch)
        changes = latest_per_ticket(
            (str(row["id"]), datetime.fromisoformat(row["updated_at"])) for row in rows
        )
        return ChangeBatch(tuple(changes), complete=not paging.stopped_at_limit)

    @_scripted
    async def get_ticket(self, ticket_id: str) -> Ticket:
        return self._ticket(await self.http.json("GET", f"/api/tickets/{ticket_id}"))

    @_scripted
    async def find_ticket(self, number: str) -> Ticket | None:
        return next(iter(await self._search(number=number)), None)

    @_scripted
    async def open_tickets_of(self, company: str) -> list[Ticket] | None:
        """``GET /api/search?company=``, those whose status is not done by the status map."""
        found = await self._search(company=company)
        return [t for t in found if not t.status_class.is_done]

    @_scripted
    async def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[Note]:
        params = {} if since is None else {"since": since.isoformat()}
        found = await self.http.json("GET", f"/api/tickets/{ticket_id}/notes", params=params)
        return [self._note(ticket_id, item, n) for n, item in enumerate(found["items"])]

    # -- writes ----------------------------------------------------------------------------
    @_scripted
    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef:
        body = {
            "summary": draft.summary,
            "description": draft.description,
            "priority": draft.priority,
            "correlation_id": key,
        }
        where = "POST /api/tickets"
        ticket = self._written_ticket(
            await self.http.write("POST", "/api/tickets", json=body), where
        )
        check_written(
            {"correlation_id": key},
            {"correlation_id": ticket.fields.get("correlation_id")},
            None,
            system=self.name,
            where=f"{where} (ticket {ticket.ref.id})",
            product=self.display_name,
        )
        return ticket.ref

    @_scripted
    async def find_created(self, key: str) -> TicketRef | None:
        return next((t.ref for t in await self._search(correlation_id=key)), None)

    @_scripted
    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        body = {"text": note.text, "visibility": note.visibility.value}
        path = f"/api/tickets/{ticket_id}/notes"
        created = expect_object(
            await self.http.write("POST", path, json=body),
            self.name,
            f"POST {path}",
            uncertain=True,
        )
        if not isinstance(created.get("id"), str | int) or isinstance(created.get("id"), bool):
            raise bad_shape(self.name, f"POST {path}", "$.id is missing", uncertain=True)
        check_written(
            {"visibility": note.visibility.value if note.visibility.is_public else "internal"},
            {"visibility": created["visibility"]} if "visibility" in created else {},
            None,
            system=self.name,
            where=f"POST {path} (note {created['id']})",
            product=self.display_name,
        )
        return str(created["id"])

    @_scripted
    async def find_note(
        self, ticket_id: str, key: str, note: NoteDraft, since: datetime | None = None
    ) -> str | None:
        found = await self.http.json("GET", f"/api/tickets/{ticket_id}/notes")
        notes = [self._note(ticket_id, item) for item in found["items"]]
        return self.written_note(notes, note, since)

    @_scripted
    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        """Send only the fields whose value differs; nothing at all when none does."""
        ticket = self._ticket(await self.http.json("GET", f"/api/tickets/{ticket_id}"))
        wanted = {
            "status": change.status,
            "priority": change.priority,
            "external_ref": change.external_ref,
            "queue": change.queue,
            "assignee": change.assignee,
            "group": change.group,
        }
        body: dict[str, Any] = {
            name: value
            for name, value in wanted.items()
            if value is not None and value != getattr(ticket, name)
        }
        merged = {**ticket.fields, **change.fields}
        if merged != dict(ticket.fields):
            body["fields"] = merged
        if body:
            where = f"PATCH /api/tickets/{ticket_id}"
            answer = await self.http.write("PATCH", f"/api/tickets/{ticket_id}", json=body)
            after = self._written_ticket(answer, where)
            check_record(after.ref.id, ticket_id, system=self.name, where=where)
            sent = {k: v for k, v in body.items() if k != "fields"}
            sent.update({f"fields.{k}": str(v) for k, v in change.fields.items()})

            def shown(t: Ticket) -> dict[str, str | None]:
                values = {k: getattr(t, k) for k in sent if not k.startswith("fields.")}
                values.update(
                    {f"fields.{k}": str(t.fields[k]) for k in change.fields if k in t.fields}
                )
                return values

            check_written(
                sent,
                shown(after),
                shown(ticket),
                system=self.name,
                where=where,
                product=self.display_name,
            )

    # -- webhooks -------------------------------------------------------------------------
    def _webhook_secret(self) -> str | None:
        secret = self.fake.webhook_secret
        return secret.get_secret_value() if secret else None

    def webhook_precheck(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        webhooks.precheck(headers, self._webhook_secret())

    async def webhook_hints(self, request: WebhookRequest) -> list[WebhookHint]:
        return webhooks.hints(request, self._webhook_secret())
