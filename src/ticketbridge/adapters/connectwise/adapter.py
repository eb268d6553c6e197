"""ConnectWise PSA (Manage) REST API 3.0, used as the PSA side.

What this adapter reads and writes, all relative to the configured base URL
(``https://api-na.myconnectwise.net/v4_6_release/apis/3.0`` and the like):

* ``GET /service/tickets`` (``conditions=lastUpdated >= [...]``, ``orderBy=lastUpdated asc, id asc``,
  keyset pages) for polling; ``GET /service/tickets/{id}`` for a ticket;
* ``GET /service/tickets/{id}/allNotes`` to read notes *and* the notes technicians write
  on time entries (``/notes`` leaves those out); ``POST /service/tickets/{id}/notes`` to
  write one;
* ``PATCH /service/tickets/{id}`` (JSON-Patch style array) for status, priority and the
  link field, with ids looked up at ``GET /service/boards/{boardId}/statuses`` and
  ``GET /service/priorities``;
* callbacks: the JSON body's ``Metadata.key_url`` gives the signing key, and the
  ``x-content-signature`` header carries ``base64(HMAC-SHA256(sha256(key), body))``.

Choices where the API leaves room:

* The ticket's description: ConnectWise does not return ``initialDescription`` on
  read, so the description is ``initialDescription`` when present, else the text of
  the earliest Discussion (``detailDescriptionFlag``) note, which is where
  ConnectWise keeps the initial description.
* Visibility is deny-by-default: only ``internalAnalysisFlag`` makes a note internal
  and only ``detailDescriptionFlag`` makes it public; a note with neither (for example
  Resolution only, which prints on invoices) is ``UNKNOWN``.
* Tickets are not created here: ConnectWise is the PSA side, where tickets start.
* A write is done only when its answer proves it: the JSON record we wrote (the note
  or the ticket, by id), showing what we sent.  Anything else (an HTML page with a
  200, an empty body, another record) leaves the write uncertain, looked up before it
  is sent again; a field the answer shows still holding its old value (a security
  role that may not change it, a board rule) is refused naming the field.
* Webhook key URLs are fetched only from the base URL's own host and port, the
  ConnectWise cloud API hosts, and ``allowed_key_hosts``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import Field, field_validator

from ticketbridge.adapters.base import (
    AdapterContext,
    AdapterSettings,
    Capability,
    NameKind,
    NameLookup,
    TicketAdapter,
)
from ticketbridge.adapters.connectwise import defaults
from ticketbridge.adapters.connectwise.webhooks import CallbackVerifier, precheck, signature
from ticketbridge.adapters.kit.http import HttpClient, decode_json
from ticketbridge.adapters.kit.paging import (
    CursorPaging,
    Fetch,
    Page,
    PageNumberPaging,
    latest_per_ticket,
)
from ticketbridge.adapters.kit.payload import (
    bad_shape,
    expect_object,
    expect_objects,
    parse_utc,
    text_or_none,
)
from ticketbridge.adapters.kit.proof import check_record, check_written
from ticketbridge.adapters.kit.settings import HostList, NonEmpty, PageSize, RequiredSecret
from ticketbridge.domain import (
    ChangeBatch,
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
    note_order,
)
from ticketbridge.errors import (
    AdapterError,
    AuthFailedError,
    NotFoundError,
    PermanentError,
)

__all__ = ["ConnectWiseAdapter", "ConnectWiseSettings"]

#: The API version every request pins.
ACCEPT = "application/vnd.connectwise.com+json; version=2025.1"
#: The ticket field holding the vendor ticket number unless configured otherwise.
LINK_FIELD_DEFAULT = "externalXRef"
#: ``allNotes``' ``noteType`` of the notes written on time entries.
TIME_ENTRY_NOTE = "TimeEntryNote"
#: Note ids of time entries start with this (their ids are a series apart from notes').
TIME_ENTRY_PREFIX = "time-"
#: The poll's listing order: a keyset over (lastUpdated, id), unique and total.
KEYSET_ORDER = "lastUpdated asc, id asc"
CUSTOM_PREFIX = "custom:"


class ConnectWiseSettings(AdapterSettings):
    """``systems.<name>.settings`` of a ConnectWise PSA system."""

    company_id: NonEmpty
    public_key: RequiredSecret
    private_key: RequiredSecret
    client_id: RequiredSecret
    #: The ticket field holding the vendor ticket number: ``externalXRef`` or
    #: ``custom:<caption>`` for the custom field with that caption.
    link_field: str = LINK_FIELD_DEFAULT
    #: Extra ``host`` or ``host:port`` entries allowed to serve webhook signing keys.
    allowed_key_hosts: HostList = Field(default_factory=list)
    #: Records per page (ConnectWise allows up to 1000).
    page_size: PageSize = Field(default=100, le=1000)
    #: The identifier of the API member the keys belong to: the author of the notes
    #: ticketbridge writes, by which it finds its own writes and recognises them when
    #: read back.  Unset: learned from the first note written (until then, own writes
    #: are found by body hash and time alone).
    api_member: str | None = None

    @field_validator("link_field")
    @classmethod
    def _check_link_field(cls, value: str) -> str:
        if value == LINK_FIELD_DEFAULT:
            return value
        if value.startswith(CUSTOM_PREFIX) and value[len(CUSTOM_PREFIX) :].strip():
            return value
        raise ValueError('must be "externalXRef" or "custom:<caption>"')

    @property
    def custom_caption(self) -> str | None:
        """The custom field's caption when ``link_field`` names one."""
        if self.link_field.startswith(CUSTOM_PREFIX):
            return self.link_field[len(CUSTOM_PREFIX) :].strip()
        return None


def _format_condition_time(when: datetime) -> str:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticket_id(ticket_id: str) -> int:
    """A ConnectWise ticket id, refusing anything that is not a positive integer."""
    if not ticket_id.isascii() or not ticket_id.isdigit() or int(ticket_id) <= 0:
        raise NotFoundError(f"{ticket_id!r} is not a ConnectWise ticket id")
    return int(ticket_id)


def _quoted(value: str, what: str) -> str:
    """A string literal for a ``conditions`` expression."""
    if '"' in value or "\\" in value or not value.strip():
        raise PermanentError(f"{what} {value!r} cannot be looked up by name")
    return f'"{value}"'


def _ref(ticket: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = ticket.get(name)
    return value if isinstance(value, dict) else {}


def _item_id(item: Mapping[str, Any]) -> Hashable:
    """A record's ``id`` as a dict key (odd values by their repr)."""
    value = item.get("id")
    return value if isinstance(value, int | str) else repr(value)


def _note_key(item: Mapping[str, Any]) -> Hashable:
    """An ``allNotes`` entry's identity: notes and time entries number apart."""
    return (str(item.get("noteType")), _item_id(item))


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.strip().casefold() == b.strip().casefold()


def _flag_text(value: Any) -> str | None:
    """An id or flag as text for comparing what was written with what is answered."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return text_or_none(value)


def _same_text(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return _same(a, b)


def _custom_value_text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return text_or_none(value)


class ConnectWiseAdapter(TicketAdapter):
    """ConnectWise PSA tickets and notes through the Manage REST API."""

    kind: ClassVar[str] = "connectwise"
    display_name: ClassVar[str] = "ConnectWise PSA"
    sides: ClassVar[frozenset[Side]] = frozenset({Side.PSA})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.WEBHOOKS,
            Capability.ADD_NOTE,
            Capability.SET_STATUS,
            Capability.SET_PRIORITY,
            Capability.SET_FIELDS,
            Capability.ASSIGN,
            Capability.FIND_BY_NUMBER,
        }
    )
    simulator: ClassVar[str | None] = "ticketbridge.adapters.connectwise.simulator:create_app"
    #: The Developer Guide ("Rate Limiting"): integrations above about 1,000 requests a
    #: minute are likely to be throttled with 429 + Retry-After.
    request_budget: ClassVar[tuple[int, float] | None] = (1000, 60.0)
    driver: ClassVar[str | None] = "ticketbridge.adapters.connectwise.driver:ConnectWiseDriver"
    settings_model: ClassVar[type[AdapterSettings]] = ConnectWiseSettings
    known_statuses: ClassVar[tuple[str, ...] | None] = None
    status_classes = defaults.STATUS_CLASSES
    priority_ranks = defaults.PRIORITY_RANKS
    field_aliases = defaults.FIELD_ALIASES
    closing_terms = defaults.CLOSING_TERMS

    def __init__(self, ctx: AdapterContext, settings: AdapterSettings) -> None:
        if not isinstance(settings, ConnectWiseSettings):
            raise TypeError(f"expected ConnectWiseSettings, got {type(settings).__name__}")
        self.cw: ConnectWiseSettings = settings
        self._api_member: str | None = settings.api_member
        self._status_ids: dict[tuple[int, str], int] = {}
        self._priority_ids: dict[str, int] = {}
        self._board_ids: dict[str, int] = {}
        self._callbacks = CallbackVerifier(
            ctx.base_url, settings.allowed_key_hosts, transport=ctx.webhook_transport
        )
        super().__init__(ctx, settings)

    # -- construction -------------------------------------------------------
    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        username = f"{self.cw.company_id}+{self.cw.public_key.get_secret_value()}"
        return HttpClient(
            system=ctx.name,
            base_url=ctx.base_url,
            auth=httpx.BasicAuth(username, self.cw.private_key.get_secret_value()),
            headers={"clientId": self.cw.client_id.get_secret_value(), "Accept": ACCEPT},
            timeout=ctx.timeout,
            retry=ctx.retry,
            transport=ctx.transport,
        )

    async def aclose(self) -> None:
        await self._callbacks.aclose()
        await super().aclose()

    #: ``x-content-signature`` for a body under a signing key, as ConnectWise computes it.
    signature = staticmethod(signature)

    # -- HTTP helpers -------------------------------------------------------
    async def _get_object(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        resp = await self.http.request("GET", path, params=params)
        return expect_object(decode_json(resp, self.name), self.name, f"GET {path}")

    def _paging(self, path: str) -> PageNumberPaging:
        """``page``/``pageSize`` paging; ConnectWise sends ``Link`` headers."""
        return PageNumberPaging(
            size=self.cw.page_size, system=self.name, where=f"GET {path}", key=_item_id
        )

    def _fetch(self, path: str, params: Mapping[str, Any]) -> Fetch:
        async def fetch(paging: Mapping[str, Any]) -> Page:
            resp = await self.http.request("GET", path, params={**params, **paging})
            items = expect_objects(decode_json(resp, self.name), self.name, f"GET {path}")
            return Page(items, resp)

        return fetch

    async def _all(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await self._paging(path).walk(self._fetch(path, params))

    # -- reads ----------------------------------------------------------------
    async def check(self) -> None:
        await self._get_object("/service/tickets/count")

    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        return list((await self.changes_after(since)).changes)

    async def changes_after(
        self, since: datetime | None, after: str | None = None, *, max_pages: int | None = None
    ) -> ChangeBatch:
        """Keyset pages over ``(lastUpdated, id)``: each page is the first page of the
        tickets after the last one read (``lastUpdated > [T] or (lastUpdated = [T] and
        id > I)``), so a ticket updated during the walk moves behind the cursor and is
        read there; nothing shifts onto a page already read."""
        path = "/service/tickets"
        where = f"GET {path}"

        def condition(stamp: datetime, last_id: int | None) -> str:
            at = _format_condition_time(stamp)
            if last_id is None:
                return f"lastUpdated >= [{at}]"
            return f"(lastUpdated > [{at}] or (lastUpdated = [{at}] and id > {last_id}))"

        first: dict[str, Any] = {"orderBy": KEYSET_ORDER, "page": 1, "pageSize": self.cw.page_size}
        if since is not None:
            first["conditions"] = condition(since, None if after is None else _ticket_id(after))

        def row_key(row: Mapping[str, Any]) -> tuple[int, datetime]:
            ticket_id = _int_or_none(row.get("id"))
            if ticket_id is None:
                raise bad_shape(self.name, where, "a ticket has no integer id")
            info = expect_object(row.get("_info"), self.name, where, f"ticket {ticket_id}._info")
            updated = parse_utc(
                info.get("lastUpdated"), self.name, where, f"ticket {ticket_id}._info.lastUpdated"
            )
            return ticket_id, updated

        def next_params(page: Page) -> Mapping[str, Any] | None:
            link = page.response.headers.get("link")
            more = "next" in page.response.links if link else len(page.items) >= self.cw.page_size
            if not more or not page.items:
                return None
            last_id, updated = row_key(page.items[-1])
            return {**first, "conditions": condition(updated, last_id)}

        paging = CursorPaging(
            first=first,
            next_params=next_params,
            system=self.name,
            where=where,
            key=_item_id,
            **({"max_pages": max_pages} if max_pages is not None else {}),
        )
        seen: list[tuple[str, datetime, Ticket | None]] = []
        for row in await paging.walk(self._fetch(path, {})):
            ticket_id, updated = row_key(row)
            # the listing shows whole tickets: no need to read each again
            seen.append((str(ticket_id), updated, self._listed(row)))
        return ChangeBatch(tuple(latest_per_ticket(seen)), complete=not paging.stopped_at_limit)

    async def _raw_ticket(self, ticket_id: str) -> dict[str, Any]:
        return await self._get_object(f"/service/tickets/{_ticket_id(ticket_id)}")

    async def get_ticket(self, ticket_id: str) -> Ticket:
        raw = await self._raw_ticket(ticket_id)
        description = text_or_none(raw.get("initialDescription"))
        if description is None:
            description = await self._first_discussion(ticket_id)
        return self._to_ticket(raw, description or "")

    async def find_ticket(self, number: str) -> Ticket | None:
        number = number.strip().lstrip("#")
        try:
            _ticket_id(number)
            return await self.get_ticket(number)
        except NotFoundError:
            return None

    def _class_of(self, status: str | None, closed_flag: bool) -> StatusClass:
        """The status's class, with ConnectWise's closed flag deciding whether it is done."""
        found = self.status_class_of(status)
        if closed_flag:
            return found if found is not None and found.is_done else StatusClass.CLOSED
        if found is None:
            return StatusClass.WORKING
        return StatusClass.WAITING_ON_CUSTOMER if found.is_done else found

    def _rank_of(self, priority: Mapping[str, Any]) -> int | None:
        """The priority's rank by the merged map, else its sort order at ConnectWise."""
        rank = self.priority_rank_of(text_or_none(priority.get("name")))
        return rank if rank is not None else _int_or_none(priority.get("sort"))

    def _external_ref(self, raw: Mapping[str, Any]) -> str | None:
        caption = self.cw.custom_caption
        if caption is None:
            return text_or_none(raw.get(LINK_FIELD_DEFAULT))
        for entry in raw.get("customFields") or []:
            if isinstance(entry, dict) and entry.get("caption") == caption:
                return _custom_value_text(entry.get("value"))
        return None

    def _listed(self, raw: Mapping[str, Any]) -> Ticket | None:
        """A listing's ticket record, or ``None`` when it does not parse (the ticket is
        then read on its own, and fails there, for that ticket alone)."""
        try:
            return self._to_ticket(raw, None)
        except AdapterError:
            return None

    def _to_ticket(self, raw: Mapping[str, Any], description: str | None) -> Ticket:
        """A ticket record; ``description`` ``None``: not known (a listing's or a
        callback's record, where ``initialDescription`` is not shown): partial."""
        where = "GET /service/tickets/{id}"
        ticket_id = _int_or_none(raw.get("id"))
        if ticket_id is None:
            raise bad_shape(self.name, where, "id should be an integer")
        info = expect_object(raw.get("_info") or {}, self.name, where, "_info")
        status, priority = _ref(raw, "status"), _ref(raw, "priority")
        company, board = _ref(raw, "company"), _ref(raw, "board")
        owner, kind = _ref(raw, "owner"), _ref(raw, "type")
        name = text_or_none(raw.get("contactName"))
        email = text_or_none(raw.get("contactEmailAddress"))
        phone = text_or_none(raw.get("contactPhoneNumber"))
        contact = Contact(name=name, email=email, phone=phone) if name or email or phone else None
        created = info.get("dateEntered")
        updated = info.get("lastUpdated")
        return Ticket(
            ref=TicketRef(system=self.name, id=str(ticket_id), number=str(ticket_id)),
            summary=str(raw.get("summary") or ""),
            description=description or "",
            partial=description is None,
            status=text_or_none(status.get("name")),
            status_class=self._class_of(
                text_or_none(status.get("name")), raw.get("closedFlag") is True
            ),
            priority=text_or_none(priority.get("name")),
            priority_rank=self._rank_of(priority),
            company=text_or_none(company.get("identifier")),
            company_name=text_or_none(company.get("name")),
            contact=contact,
            queue=text_or_none(board.get("name")),
            type=text_or_none(kind.get("name")),
            subtype=text_or_none(_ref(raw, "subType").get("name")),
            group=text_or_none(_ref(raw, "team").get("name")),
            assignee=text_or_none(owner.get("identifier")) or text_or_none(owner.get("name")),
            external_ref=self._external_ref(raw),
            created_at=parse_utc(created, self.name, where, "_info.dateEntered")
            if created
            else None,
            updated_at=parse_utc(updated, self.name, where, "_info.lastUpdated")
            if updated
            else None,
            updated_by=text_or_none(info.get("updatedBy")),
            fields={
                "board_id": _int_or_none(board.get("id")),
                "status_id": _int_or_none(status.get("id")),
                "priority_id": _int_or_none(priority.get("id")),
            },
        )

    # -- notes ----------------------------------------------------------------
    def _notes_params(self) -> dict[str, Any]:
        return {"orderBy": "id asc"}

    def _to_note(self, ticket_id: str, raw: Mapping[str, Any]) -> Note:
        """A ``ServiceNote`` or an ``allNotes`` entry (``ServiceTicketNote``: a ticket note
        or the notes of a time entry, told apart by ``noteType``)."""
        where = f"GET /service/tickets/{ticket_id}/allNotes"
        note_id = _int_or_none(raw.get("id"))
        if note_id is None:
            raise bad_shape(self.name, where, "a note has no integer id")
        internal = raw.get("internalAnalysisFlag") is True
        discussion = raw.get("detailDescriptionFlag") is True
        resolution = raw.get("resolutionFlag") is True
        kind: str | None
        if internal:
            visibility, kind = Visibility.INTERNAL, "internal"
        elif discussion:
            visibility, kind = Visibility.PUBLIC, "discussion"
        else:
            visibility, kind = Visibility.UNKNOWN, ("resolution" if resolution else None)
        info = _ref(raw, "_info")
        created = raw.get("dateCreated") or info.get("dateEntered") or raw.get("timeStart")
        time_entry = raw.get("noteType") == TIME_ENTRY_NOTE
        return Note(
            system=self.name,
            ticket_id=ticket_id,
            # time entries number apart from notes: their ids get a prefix of their own
            id=f"{TIME_ENTRY_PREFIX}{note_id}" if time_entry else str(note_id),
            text=str(raw.get("text") or ""),
            visibility=visibility,
            created_at=parse_utc(created, self.name, where, f"note {note_id} creation time"),
            author=text_or_none(_ref(raw, "member").get("name"))
            or text_or_none(_ref(raw, "contact").get("name"))
            or text_or_none(raw.get("createdBy"))
            or text_or_none(raw.get("originalAuthor")),
            kind=f"time entry, {kind}" if time_entry and kind else kind,
            sequence=note_id,
            by_us=self._by_us(raw),
        )

    @property
    def own_identity_known(self) -> bool:  # type: ignore[override]
        return self._api_member is not None

    def _by_us(self, raw: Mapping[str, Any]) -> bool:
        """Was this note written by ticketbridge: created by the API member and in its own
        name (not a contact's reply, nor one written for a technician, ``member``)?"""
        own = self._api_member
        if own is None or raw.get("contact"):
            return False
        # ``ServiceNote.createdBy``; an ``allNotes`` entry says it in ``_info.enteredBy``
        created_by = text_or_none(raw.get("createdBy")) or text_or_none(
            _ref(raw, "_info").get("enteredBy")
        )
        member = text_or_none(_ref(raw, "member").get("identifier"))
        return (
            created_by is not None
            and created_by.casefold() == own.casefold()
            and (member is None or member.casefold() == own.casefold())
        )

    async def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[Note]:
        """Notes and time entries (``allNotes``): technicians write most Discussion notes on
        time entries, which ``/notes`` leaves out.  With ``since``, the entries changed
        since then (``lastUpdated``, so a time entry logged late for an earlier start is
        read too)."""
        number = _ticket_id(ticket_id)
        path = f"/service/tickets/{number}/allNotes"
        paging = PageNumberPaging(
            size=self.cw.page_size, system=self.name, where=f"GET {path}", key=_note_key
        )
        params = self._notes_params()
        if since is not None:
            params["conditions"] = f"lastUpdated >= [{_format_condition_time(since)}]"
        rows = await paging.walk(self._fetch(path, params))
        notes = [self._to_note(str(number), row) for row in rows]
        notes.sort(key=note_order)
        return notes

    async def _first_discussion(self, ticket_id: str) -> str | None:
        number = _ticket_id(ticket_id)
        path = f"/service/tickets/{number}/notes"
        fetch = self._fetch(path, self._notes_params())
        async with aclosing(self._paging(path).pages(fetch)) as pages:
            async for page in pages:
                for row in page.items:
                    if row.get("detailDescriptionFlag") is True:
                        return text_or_none(row.get("text"))
        return None

    async def find_note(
        self, ticket_id: str, key: str, note: NoteDraft, since: datetime | None = None
    ) -> str | None:
        return self.written_note(await self.list_notes(ticket_id), note, since)

    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        number = _ticket_id(ticket_id)
        public = note.visibility is Visibility.PUBLIC
        body = {
            "text": note.text,
            "detailDescriptionFlag": public,
            "internalAnalysisFlag": not public,
            "resolutionFlag": False,
            "processNotifications": False,
        }
        path = f"/service/tickets/{number}/notes"
        where = f"POST {path}"
        answer = await self.http.write("POST", path, json=body)
        created = expect_object(answer, self.name, where, uncertain=True)
        note_id = _int_or_none(created.get("id"))
        if note_id is None:
            raise bad_shape(self.name, where, "id should be an integer", uncertain=True)
        check_record(
            _flag_text(created.get("ticketId")), str(number), system=self.name, where=where
        )
        flags = ("detailDescriptionFlag", "internalAnalysisFlag")
        check_written(
            {flag: _flag_text(body[flag]) for flag in flags},
            {flag: _flag_text(created[flag]) for flag in flags if flag in created},
            None,
            system=self.name,
            where=f"{where} (note {note_id})",
            product=self.display_name,
        )
        if self._api_member is None:  # who our keys write as, for finding our writes later
            self._api_member = text_or_none(created.get("createdBy"))
        return str(note_id)

    # -- tickets: create ---------------------------------------------------------
    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef:
        raise PermanentError(
            "ConnectWise is used as the PSA side: ticketbridge does not open tickets there",
            system=self.name,
        )

    async def find_created(self, key: str) -> TicketRef | None:
        return None

    # -- tickets: update ---------------------------------------------------------
    async def _lookup_id(self, path: str, condition: str, name: str, what: str) -> int:
        resp = await self.http.request(
            "GET", path, params={"conditions": condition, "pageSize": 50}
        )
        rows = expect_objects(decode_json(resp, self.name), self.name, f"GET {path}")
        exact = [r for r in rows if r.get("name") == name]
        loose = [r for r in rows if _same(text_or_none(r.get("name")), name)]
        for candidates in (exact, loose):
            active = [r for r in candidates if r.get("inactive") is not True]
            for row in active or candidates:
                found = _int_or_none(row.get("id"))
                if found is not None:
                    return found
        raise PermanentError(f"{what} {name!r} not found at {path}", system=self.name)

    async def _status_id(self, board_id: int, name: str) -> int:
        cache_key = (board_id, name.casefold())
        if cache_key not in self._status_ids:
            self._status_ids[cache_key] = await self._lookup_id(
                f"/service/boards/{board_id}/statuses",
                f"name={_quoted(name, 'status')}",
                name,
                "status",
            )
        return self._status_ids[cache_key]

    async def _board_id(self, name: str) -> int:
        cache_key = name.casefold()
        if cache_key not in self._board_ids:
            self._board_ids[cache_key] = await self._lookup_id(
                "/service/boards", f"name={_quoted(name, 'board')}", name, "board"
            )
        return self._board_ids[cache_key]

    async def _priority_id(self, name: str) -> int:
        cache_key = name.casefold()
        if cache_key not in self._priority_ids:
            self._priority_ids[cache_key] = await self._lookup_id(
                "/service/priorities", f"name={_quoted(name, 'priority')}", name, "priority"
            )
        return self._priority_ids[cache_key]

    def _link_op(self, raw: Mapping[str, Any], value: str) -> dict[str, Any] | None:
        caption = self.cw.custom_caption
        if caption is None:
            if text_or_none(raw.get(LINK_FIELD_DEFAULT)) == value:
                return None
            return {"op": "replace", "path": LINK_FIELD_DEFAULT, "value": value}
        return self._custom_fields_op(raw, {caption: value})

    def _custom_fields_op(
        self, raw: Mapping[str, Any], values: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """One replace of the whole customFields array with the given captions' values set
        (ConnectWise cannot patch one entry); ``None`` when they already hold them."""
        fields = raw.get("customFields")
        entries = [f for f in fields if isinstance(f, dict)] if isinstance(fields, list) else []
        updated = [dict(entry) for entry in entries]
        changed = False
        for caption, value in values.items():
            matches = [f for f in updated if f.get("caption") == caption]
            if not matches:
                raise PermanentError(
                    f"ticket {raw.get('id')} has no custom field captioned {caption!r}",
                    system=self.name,
                )
            if _custom_value_text(matches[0].get("value")) != value:
                matches[0]["value"] = value
                changed = True
        return {"op": "replace", "path": "customFields", "value": updated} if changed else None

    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        if change.is_empty():
            return
        raw = await self._raw_ticket(ticket_id)
        ops: list[dict[str, Any]] = []
        new_board: int | None = None
        if change.queue is not None:
            current_board = text_or_none(_ref(raw, "board").get("name"))
            if not _same(current_board, change.queue):
                new_board = await self._board_id(change.queue)
                ops.append({"op": "replace", "path": "board", "value": {"id": new_board}})
        if change.assignee is not None:
            current_owner = text_or_none(_ref(raw, "owner").get("identifier"))
            if not _same(current_owner, change.assignee):
                _quoted(change.assignee, "owner")
                ops.append(
                    {"op": "replace", "path": "owner", "value": {"identifier": change.assignee}}
                )
        if change.group is not None:
            current_team = text_or_none(_ref(raw, "team").get("name"))
            if new_board is not None or not _same(current_team, change.group):
                team_board = new_board or _int_or_none(_ref(raw, "board").get("id"))
                if team_board is None:
                    raise PermanentError(
                        f"ticket {ticket_id} has no board: no teams to pick", system=self.name
                    )
                team_id = await self._lookup_id(
                    f"/service/boards/{team_board}/teams",
                    f"name={_quoted(change.group, 'team')}",
                    change.group,
                    "team",
                )
                ops.append({"op": "replace", "path": "team", "value": {"id": team_id}})
        if change.fields:
            captions: dict[str, str] = {}
            for name, value in change.fields.items():
                if not name.startswith("custom:") or not name[len("custom:") :].strip():
                    raise PermanentError(
                        f"ConnectWise field {name!r} cannot be set; name custom fields as "
                        "'custom:<caption>' (board, status, owner, team and priority have "
                        "their own settings)",
                        system=self.name,
                    )
                captions[name[len("custom:") :].strip()] = value
            custom = self._custom_fields_op(raw, captions)
            if custom is not None:
                ops.append(custom)
        if change.status is not None:
            current = text_or_none(_ref(raw, "status").get("name"))
            if new_board is not None or not _same(current, change.status):
                board_id = new_board or _int_or_none(_ref(raw, "board").get("id"))
                if board_id is None:
                    raise PermanentError(
                        f"ticket {ticket_id} has no board: cannot look its statuses up",
                        system=self.name,
                    )
                status_id = await self._status_id(board_id, change.status)
                ops.append({"op": "replace", "path": "status", "value": {"id": status_id}})
        if change.priority is not None:
            current = text_or_none(_ref(raw, "priority").get("name"))
            if not _same(current, change.priority):
                priority_id = await self._priority_id(change.priority)
                ops.append({"op": "replace", "path": "priority", "value": {"id": priority_id}})
        if change.external_ref is not None:
            op = self._link_op(raw, change.external_ref)
            if op is not None:
                ops.append(op)
        if ops:
            number = _ticket_id(ticket_id)
            where = f"PATCH /service/tickets/{number}"
            answer = await self.http.write("PATCH", f"/service/tickets/{number}", json=ops)
            after = expect_object(answer, self.name, where, uncertain=True)
            check_record(_flag_text(after.get("id")), str(number), system=self.name, where=where)
            sent: dict[str, str | None] = {}
            for op in ops:
                sent.update(self._written_values(op["path"], op["value"]))
            check_written(
                sent,
                self._shown_values(after, sent),
                self._shown_values(raw, sent),
                system=self.name,
                where=where,
                product=self.display_name,
                same=_same_text,
            )

    # -- proof of writes ------------------------------------------------------------
    def _written_values(self, path: str, value: Any) -> dict[str, str | None]:
        """What one patch operation sets, as ``field -> text`` (custom fields by caption)."""
        if path == "customFields":
            return {
                f"customFields[{entry.get('caption')}]": _custom_value_text(entry.get("value"))
                for entry in value
                if isinstance(entry, dict)
            }
        if path == "owner":
            return {"owner": text_or_none(value.get("identifier"))}
        if isinstance(value, dict):
            return {path: _flag_text(value.get("id"))}
        return {path: text_or_none(value)}

    def _shown_values(
        self, record: Mapping[str, Any], fields: Mapping[str, Any]
    ) -> dict[str, str | None]:
        """The ``fields`` (as :meth:`_written_values` names them) a ticket shows."""
        shown: dict[str, str | None] = {}
        entries = record.get("customFields")
        customs = {
            entry.get("caption"): entry
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, dict)
        }
        for name in fields:
            if name.startswith("customFields["):
                entry = customs.get(name[len("customFields[") : -1])
                if entry is not None:
                    shown[name] = _custom_value_text(entry.get("value"))
            elif name == "owner":
                if name in record:
                    shown[name] = text_or_none(_ref(record, "owner").get("identifier"))
            elif name in record:
                value = record[name]
                shown[name] = (
                    _flag_text(value.get("id")) if isinstance(value, dict) else text_or_none(value)
                )
        return shown

    # -- names ----------------------------------------------------------------
    async def lookup_names(
        self, wanted: Mapping[NameKind, frozenset[str]]
    ) -> Mapping[NameKind, NameLookup]:
        """Boards, their statuses and teams, priorities, members and companies, each read
        from its own endpoint; a 403 (the API member's security role lacks the module)
        is that kind's error.  Custom fields (``custom:<caption>``) from a ticket's
        ``customFields``, which lists every one of its screen."""
        out: dict[NameKind, NameLookup] = {}

        async def names(path: str, key: str, **params: Any) -> frozenset[str]:
            rows = await self._all(path, {"fields": f"id,{key}", **params})
            return frozenset(t for r in rows if (t := text_or_none(r.get(key))) is not None)

        async def read(kind: NameKind, path: str, key: str) -> None:
            if kind in wanted:
                try:
                    out[kind] = NameLookup(await names(path, key))
                except AuthFailedError as exc:
                    out[kind] = NameLookup(error=str(exc))

        boards: list[dict[str, Any]] = []
        needs_boards = {NameKind.QUEUE, NameKind.STATUS, NameKind.GROUP} & set(wanted)
        if needs_boards:
            try:
                boards = await self._all("/service/boards", {"fields": "id,name"})
            except AuthFailedError as exc:
                for kind in needs_boards:
                    out[kind] = NameLookup(error=str(exc))
        if NameKind.QUEUE in wanted and NameKind.QUEUE not in out:
            out[NameKind.QUEUE] = NameLookup(
                frozenset(t for b in boards if (t := text_or_none(b.get("name"))) is not None)
            )
        # statuses and teams are per board: those of the boards configuration names
        # (every board when it names none that exist)
        named = {" ".join(q.split()).casefold() for q in wanted.get(NameKind.QUEUE, ())}
        chosen = [
            b for b in boards if " ".join(str(b.get("name", "")).split()).casefold() in named
        ] or boards
        for kind, leaf in ((NameKind.STATUS, "statuses"), (NameKind.GROUP, "teams")):
            if kind not in wanted or kind in out:
                continue
            found: set[str] = set()
            try:
                for board in chosen:
                    found |= await names(f"/service/boards/{board['id']}/{leaf}", "name")
            except AuthFailedError as exc:
                out[kind] = NameLookup(error=str(exc))
                continue
            out[kind] = NameLookup(frozenset(found))
        await read(NameKind.PRIORITY, "/service/priorities", "name")
        await read(NameKind.ASSIGNEE, "/system/members", "identifier")
        await read(NameKind.ACCOUNT, "/company/companies", "identifier")
        if NameKind.FIELD in wanted:
            # Every ticket carries its screen's whole customFields array, captions included:
            # one ticket names them all.  No ticket yet: the kind stays unchecked.
            try:
                resp = await self.http.request(
                    "GET",
                    "/service/tickets",
                    params={"pageSize": 1, "fields": "id,customFields"},
                )
            except AuthFailedError as exc:
                out[NameKind.FIELD] = NameLookup(error=str(exc))
            else:
                rows = expect_objects(
                    decode_json(resp, self.name), self.name, "GET /service/tickets"
                )
                if rows:
                    entries = rows[0].get("customFields")
                    captions = {
                        f"custom:{t}"
                        for e in (entries if isinstance(entries, list) else [])
                        if isinstance(e, dict) and (t := text_or_none(e.get("caption")))
                    }
                    out[NameKind.FIELD] = NameLookup(frozenset(captions))
        return out

    # -- webhooks -------------------------------------------------------------
    def webhook_precheck(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """A callback without a signature header is refused before its body is read."""
        precheck(headers)

    async def webhook_hints(self, request: WebhookRequest) -> list[WebhookHint]:
        return await self._callbacks.hints(request, read_entity=self._listed)
