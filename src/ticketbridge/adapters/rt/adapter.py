"""Request Tracker 5 as a vendor system, through its REST2 API (``<base>/REST/2.0``).

Calls (token auth, ``Authorization: token <t>``):

* ``POST /ticket`` opens a ticket in the configured queue; the subject carries the
  write's key (``Printer on fire [ref 0123456789abcdef]``) and ``find_created`` searches
  ``Subject LIKE 'ref <key>'`` in that queue (works on any RT, no custom field to set up);
* ``POST /ticket/{id}/correspond`` writes a public note (the requestor is mailed),
  ``POST /ticket/{id}/comment`` an internal one; the answer (``["Correspondence added"]``
  or ``["Comments added"]`` and a ``Location`` naming the transaction) proves the write;
* ``GET /transactions?query=...`` (TransactionSQL: the ticket's Create, Correspond and
  Comment transactions, ``Created >=`` the engine's ``since``) and
  ``GET /ticket/{id}/attachments`` (newest first, until the oldest wanted transaction)
  read notes; a transaction whose content is HTML only is converted to text;
* ``GET /tickets?query=Queue = '<q>' AND LastUpdated >= '<YYYY-MM-DD HH:MM:SS>'`` polls,
  ordered by ``LastUpdated`` then ``id``, in pages (``page``/``per_page``, ``next_page``);
* ``PUT /ticket/{id}`` sets ``Status`` and ``Priority``; RT answers 200 with messages even
  when it refused a value, so the ticket is read again to prove the write.

RT changes statuses by itself: a correspondence on a ``new`` (or resolved, rejected)
ticket opens it (the scrip "On Correspond Open Inactive Tickets", as ``RT_System``).
When the ``open`` of a ticket is RT's reaction to *our own* correspondence on a ``new``
ticket, the ticket is reported with status ``open`` (what RT shows, so nothing fights it)
but class ``new``: the vendor has not acted, so it is no acknowledgment.  Every other
status is classed as RT shows it (see README).

An answer that is RT's HTML login page (a missing, expired or revoked token; a base URL
that is not RT's web root) or a redirect to it is an ``AuthFailedError`` naming the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, SecretStr, field_validator

from ticketbridge.adapters.base import (
    WRITE_WINDOW_SLACK,
    AdapterContext,
    AdapterSettings,
    Capability,
    NameKind,
    NameLookup,
    TicketAdapter,
)
from ticketbridge.adapters.kit.http import HttpClient, decode_json
from ticketbridge.adapters.kit.paging import Page, PageNumberPaging, latest_per_ticket
from ticketbridge.adapters.kit.payload import (
    bad_shape,
    expect_object,
    expect_objects,
    parse_utc,
    text_or_none,
)
from ticketbridge.adapters.kit.proof import check_written
from ticketbridge.adapters.kit.settings import NonEmpty, PageSize, RequiredSecret
from ticketbridge.adapters.kit.text import html_to_text
from ticketbridge.adapters.rt import defaults
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
)
from ticketbridge.errors import (
    AuthFailedError,
    NotFoundError,
    PermanentError,
    TransientError,
)

__all__ = ["API_ROOT", "RtAdapter", "RtSettings", "html_to_text", "subject_with_key"]

API_ROOT = "/REST/2.0"
#: The user RT's own automatic changes are made as.
RT_SYSTEM = "RT_System"
#: Note transactions: the ticket's first message, replies (public) and comments (internal).
NOTE_TYPES = ("Create", "Correspond", "Comment")
PUBLIC_TYPES = frozenset({"Create", "Correspond"})
#: What RT answers to a note write, per visibility.
NOTE_ANSWERS: Mapping[str, str] = {
    "Correspondence added": Visibility.PUBLIC.value,
    "Comments added": Visibility.INTERNAL.value,
}
PRIORITY_NAMES: Mapping[str, int] = {"low": 0, "medium": 50, "high": 100}
#: RT 5's named priorities (``%PriorityAsString``) as its web pages show them: a ticket's
#: priority number is read as its name when it has one.
PRIORITY_SHOWN: Mapping[str, str] = {"0": "Low", "50": "Medium", "100": "High"}
#: How far apart (s) a correspondence and the status change RT made for it may be.
AUTO_STATUS_WINDOW = timedelta(seconds=2)

_KEY = re.compile(r"[0-9a-f]{16}")
_ID = re.compile(r"[0-9]{1,12}")
_TXN_LOCATION = re.compile(r"/transaction/([0-9]+)\s*$")
#: Marks of RT's web login form (``/rt/NoAuth/Login.html``, the answer to an unauthenticated
#: page request).
_LOGIN_PAGE = re.compile(
    r'name="pass"|id="login-box"|NoAuth/Login|<title>\s*Login\b', re.IGNORECASE
)


def subject_with_key(summary: str, key: str) -> str:
    """The subject of a ticket opened with ``key``: its summary and ``[ref <key>]``."""
    return f"{summary} [ref {key}]"


def _quoted(value: str) -> str:
    """A TicketSQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rt_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise NotFoundError(f"{value!r} is not a Request Tracker ticket number")
    return value


def _ref_id(value: Any) -> str | None:
    """The id of a REST2 reference (``{"id": .., "type": .., "_url": ..}``) or a bare id."""
    if isinstance(value, dict):
        value = value.get("id")
    return text_or_none(value)


class RtSettings(AdapterSettings):
    """``systems.<name>.settings`` of a Request Tracker 5 instance."""

    #: An auth token of the integration user (RT: Settings > Auth Tokens).
    token: RequiredSecret
    #: The RT user name the token belongs to: notes it wrote are ticketbridge's own.
    user: NonEmpty
    #: The queue tickets are opened in and polled from.
    queue: NonEmpty = "General"
    #: The requestor of tickets opened (the MSP desk's address, which RT mails replies to).
    requestor: str | None = None
    #: The time zone of the integration user in RT: TicketSQL dates are read in it.
    timezone: str = "UTC"
    #: Records per page (REST2 caps ``per_page`` at 100).
    page_size: PageSize = Field(default=100, le=100)

    @field_validator("queue")
    @classmethod
    def _plain_queue(cls, value: str) -> str:
        if any(ch in value for ch in "'\\\n"):
            raise ValueError("must not contain quotes, backslashes or line breaks")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class _RtPages(PageNumberPaging):
    """RT's ``page``/``per_page`` pages: more follow while the answer has ``next_page``."""

    def _more(self, page: Page, index: int) -> bool:
        body = page.response.json()
        if not isinstance(body, dict):
            return False
        if body.get("next_page"):
            return True
        # RT gives no count (total null, no next_page) of what a user who is not a
        # superuser may see: a full page may have more behind it
        return body.get("total") is None and len(page.items) >= self.size


class RtAdapter(TicketAdapter):
    """Request Tracker 5 tickets in one queue, through REST2."""

    kind: ClassVar[str] = "rt"
    display_name: ClassVar[str] = "Request Tracker"
    sides: ClassVar[frozenset[Side]] = frozenset({Side.VENDOR})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CREATE_TICKET,
            Capability.ADD_NOTE,
            Capability.SET_STATUS,
            Capability.SET_PRIORITY,
            Capability.FIND_BY_NUMBER,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = RtSettings
    simulator: ClassVar[str | None] = "ticketbridge.adapters.rt.simulator:create_app"
    driver: ClassVar[str | None] = "ticketbridge.adapters.rt.driver:RtDriver"
    #: LastUpdated is whole seconds, and RT sends no webhooks.
    change_time_resolution = timedelta(seconds=1)
    #: RT has no documented request quota (each request costs a bcrypt check of the token).
    request_budget: ClassVar[tuple[int, float] | None] = None
    known_statuses: ClassVar[tuple[str, ...] | None] = defaults.STATUSES
    status_classes = defaults.STATUS_CLASSES
    priority_ranks = defaults.PRIORITY_RANKS
    field_aliases = defaults.FIELD_ALIASES
    closing_terms = defaults.CLOSING_TERMS

    def __init__(self, ctx: AdapterContext, settings: AdapterSettings) -> None:
        if not isinstance(settings, RtSettings):
            raise TypeError(f"expected RtSettings, got {type(settings).__name__}")
        self.rt: RtSettings = settings
        self._zone = ZoneInfo(settings.timezone)
        super().__init__(ctx, settings)

    # -- construction -------------------------------------------------------------------
    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        root = ctx.base_url.rstrip("/").removesuffix(API_ROOT)
        token: SecretStr = self.rt.token
        return HttpClient(
            system=ctx.name,
            base_url=root,
            headers={
                "Authorization": f"token {token.get_secret_value()}",
                "Accept": "application/json",
                # never browser-like: RT answers a "Mozilla" agent with a login redirect
                "User-Agent": "ticketbridge",
            },
            timeout=ctx.timeout,
            retry=ctx.retry,
            # httpx's own stack, not the kit's aiohttp default: RT's server (Starlet) closes
            # every connection anyway, and aiohttp fails on its empty chunked redirects to
            # the login page (a protocol error instead of the 302 that names the cause)
            transport=ctx.transport if ctx.transport is not None else httpx.AsyncHTTPTransport(),
        )

    # -- HTTP with RT's ways of saying "not logged in" ---------------------------------------
    def _login_error(self, where: str, what: str) -> AuthFailedError:
        return AuthFailedError(
            f"{where}: Request Tracker answered with {what} instead of JSON: the request was "
            f"not authenticated. Check systems.{self.name}.settings.token (a valid, unexpired "
            f"auth token of the user {self.rt.user!r}) and that base_url is RT's web root "
            "(e.g. https://rt.example.com/rt; ticketbridge adds /REST/2.0)",
            system=self.name,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        where = f"{method} {API_ROOT}{path}"
        try:
            resp = await self.http.request(
                method,
                f"{API_ROOT}{path}",
                params=params,
                json=json,
                idempotent=method in ("GET", "HEAD"),
            )
        except AuthFailedError as exc:
            raise AuthFailedError(
                f"{exc} (check systems.{self.name}.settings.token: an auth token of the RT "
                f"user {self.rt.user!r} that is not expired or revoked)",
                system=self.name,
                status=exc.status,
            ) from None
        except PermanentError as exc:
            if exc.status is not None and 300 <= exc.status < 400:
                raise self._login_error(where, "a redirect to its login page") from None
            raise
        content_type = resp.headers.get("content-type", "").casefold()
        if "html" in content_type and _LOGIN_PAGE.search(resp.text[:20000]):
            raise self._login_error(where, "its HTML login page")
        return resp

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        resp = await self._send("GET", path, params=params)
        if "json" not in resp.headers.get("content-type", "").casefold():
            raise TransientError(
                f"GET {API_ROOT}{path}: answered {resp.headers.get('content-type') or 'untyped'}"
                f", not JSON (is systems.{self.name}.base_url RT's web root?)",
                system=self.name,
                status=resp.status_code,
            )
        return decode_json(resp, self.name)

    async def _write(self, method: str, path: str, body: Any) -> tuple[Any, httpx.Response]:
        from ticketbridge.adapters.kit.http import decode_write

        resp = await self._send(method, path, json=body)
        return decode_write(resp, self.name), resp

    async def _search(
        self, path: str, query: str, fields: str, orderby: tuple[str, ...] = ("id",)
    ) -> list[dict[str, Any]]:
        """Every record of a REST2 search (TicketSQL or TransactionSQL), all pages."""
        base: dict[str, Any] = {
            "query": query,
            "fields": fields,
            "orderby": list(orderby),
            "order": ["ASC"] * len(orderby),
        }

        async def fetch(params: Mapping[str, Any]) -> Page:
            resp = await self._send("GET", path, params={**base, **params})
            body = expect_object(decode_json(resp, self.name), self.name, f"GET {path}")
            items = expect_objects(body.get("items"), self.name, f"GET {path}", "$.items")
            return Page(items, resp)

        paging = _RtPages(
            size=self.rt.page_size,
            system=self.name,
            where=f"GET {API_ROOT}{path}",
            key=lambda item: str(item.get("id")),
            page_param="page",
            size_param="per_page",
        )
        return await paging.walk(fetch)

    def _sql_time(self, when: datetime) -> str:
        """A time as TicketSQL reads it: ``YYYY-MM-DD HH:MM:SS`` in the RT user's zone
        (ISO 8601 with ``T``/``Z`` is silently read as "any time" by RT)."""
        aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        return aware.astimezone(self._zone).strftime("%Y-%m-%d %H:%M:%S")

    # -- translation ---------------------------------------------------------------------
    def _ticket(self, data: Any, where: str, auto_from: str | None = None) -> Ticket:
        record = expect_object(data, self.name, where)
        tid = text_or_none(record.get("id"))
        if tid is None:
            raise bad_shape(self.name, where, "$.id is missing")
        status = text_or_none(record.get("Status"))
        priority = text_or_none(record.get("Priority"))
        priority = PRIORITY_SHOWN.get(priority or "", priority)
        rank = self.priority_rank_of(priority)
        if rank is None and priority is not None and priority.lstrip("-").isdigit():
            rank = defaults.rank_of_number(int(priority))
        owner = _ref_id(record.get("Owner"))
        requestors = record.get("Requestor")
        email = None
        if isinstance(requestors, list) and requestors:
            email = _ref_id(requestors[0])
        status_class = self.status_class_of(status) or StatusClass.NEW
        fields: dict[str, Any] = {
            "Queue": _ref_id(record.get("Queue")),
            "Subject": text_or_none(record.get("Subject")),
        }
        if auto_from is not None:
            status_class = self.status_class_of(auto_from) or status_class
            fields["auto_status_from"] = auto_from
        return Ticket(
            ref=TicketRef(self.name, tid, tid),
            summary=text_or_none(record.get("Subject")) or "",
            status=status,
            status_class=status_class,
            priority=priority,
            priority_rank=rank,
            contact=Contact(email=email) if email else None,
            assignee=None if owner in (None, "Nobody") else owner,
            created_at=parse_utc(record.get("Created"), self.name, where, "$.Created"),
            updated_at=parse_utc(record.get("LastUpdated"), self.name, where, "$.LastUpdated"),
            fields=fields,
        )

    async def _auto_opened_by_us(self, tid: str) -> str | None:
        """The status before RT opened the ticket, when its latest status change was RT's
        own reaction to our correspondence on a ``new`` ticket; else ``None``."""
        query = (
            f"ObjectType = 'RT::Ticket' AND ObjectId = {tid} "
            "AND (Type = 'Status' OR Type = 'Correspond')"
        )
        params = {
            "query": query,
            "fields": "Type,Creator,Created,OldValue,NewValue",
            "orderby": "id",
            "order": "DESC",
            "per_page": 20,
        }
        body = expect_object(await self._get("/transactions", params), self.name, "transactions")
        items = expect_objects(body.get("items"), self.name, "GET /transactions", "$.items")
        for index, txn in enumerate(items):
            if txn.get("Type") != "Status":
                continue
            if _ref_id(txn.get("Creator")) != RT_SYSTEM or txn.get("OldValue") != "new":
                return None
            cause = items[index + 1] if index + 1 < len(items) else None
            if cause is None or cause.get("Type") != "Correspond":
                return None
            if not self._is_us(_ref_id(cause.get("Creator"))):
                return None
            where = "GET /transactions"
            changed = parse_utc(txn.get("Created"), self.name, where, "$.Created")
            replied = parse_utc(cause.get("Created"), self.name, where, "$.Created")
            return "new" if changed - replied <= AUTO_STATUS_WINDOW else None
        return None

    def _is_us(self, user: str | None) -> bool:
        return user is not None and user.casefold() == self.rt.user.casefold()

    # -- reads -------------------------------------------------------------------------
    async def check(self) -> None:
        await self._get(f"/queue/{quote(self.rt.queue, safe='')}")

    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        query = f"Queue = {_quoted(self.rt.queue)}"
        if since is not None:
            query += f" AND LastUpdated >= '{self._sql_time(since)}'"
        rows = await self._search("/tickets", query, "LastUpdated", orderby=("LastUpdated", "id"))
        where = "GET /tickets"
        return latest_per_ticket(
            (
                str(row["id"]),
                parse_utc(row.get("LastUpdated"), self.name, where, "$.items[].LastUpdated"),
            )
            for row in rows
        )

    async def get_ticket(self, ticket_id: str) -> Ticket:
        tid = _rt_id(ticket_id)
        where = f"GET {API_ROOT}/ticket/{tid}"
        record = expect_object(await self._get(f"/ticket/{tid}"), self.name, where)
        auto_from = None
        if record.get("Status") == "open":
            auto_from = await self._auto_opened_by_us(tid)
        return self._ticket(record, where, auto_from)

    async def find_ticket(self, number: str) -> Ticket | None:
        if not _ID.fullmatch(number.strip().lstrip("#")):
            return None
        try:
            return await self.get_ticket(number.strip().lstrip("#"))
        except NotFoundError:
            return None

    async def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[Note]:
        tid = _rt_id(ticket_id)
        types = " OR ".join(f"Type = '{t}'" for t in NOTE_TYPES)
        query = f"ObjectType = 'RT::Ticket' AND ObjectId = {tid} AND ({types})"
        if since is not None:
            query += f" AND Created >= '{self._sql_time(since)}'"
        txns = await self._search("/transactions", query, "Type,Created,Creator")
        if not txns:
            return []
        texts = await self._contents(tid, min(int(str(t["id"])) for t in txns))
        notes: list[Note] = []
        where = "GET /transactions"
        for txn in sorted(txns, key=lambda t: int(str(t["id"]))):
            txn_id = str(txn["id"])
            text = texts.get(txn_id)
            if text is None or not text.strip():
                continue
            kind = str(txn.get("Type"))
            author = _ref_id(txn.get("Creator"))
            notes.append(
                Note(
                    system=self.name,
                    ticket_id=tid,
                    id=txn_id,
                    text=text,
                    visibility=Visibility.PUBLIC if kind in PUBLIC_TYPES else Visibility.INTERNAL,
                    created_at=parse_utc(txn.get("Created"), self.name, where, "$.Created"),
                    author=author,
                    kind=kind,
                    sequence=int(txn_id),
                    by_us=self._is_us(author),
                )
            )
        return notes

    async def _contents(self, tid: str, oldest_txn: int) -> dict[str, str]:
        """Transaction id -> its message as text, for transactions from ``oldest_txn`` on:
        the ticket's attachments newest first, until an older transaction shows up.
        A message's ``text/plain`` part wins; one that is HTML only is converted."""
        path = f"/ticket/{tid}/attachments"
        where = f"GET {API_ROOT}{path}"
        parts: dict[str, list[tuple[int, str, str]]] = {}
        page = 1
        while True:
            params = {
                "fields": "TransactionId,ContentType,Content,Filename",
                "orderby": "id",
                "order": "DESC",
                "per_page": self.rt.page_size,
                "page": page,
            }
            body = expect_object(await self._get(path, params), self.name, where)
            items = expect_objects(body.get("items"), self.name, where, "$.items")
            older = False
            for item in items:
                txn = _ref_id(item.get("TransactionId"))
                if txn is None or not txn.isdigit():
                    continue
                if int(txn) < oldest_txn:
                    older = True
                    continue
                if text_or_none(item.get("Filename")):
                    continue  # a file, not the message
                content_type = str(item.get("ContentType") or "").casefold()
                content = item.get("Content")
                if isinstance(content, str) and content.strip():
                    parts.setdefault(txn, []).append((int(str(item["id"])), content_type, content))
            more = bool(body.get("next_page")) or (
                body.get("total") is None and len(items) >= self.rt.page_size
            )
            if older or not more or page >= 1000:
                break
            page += 1
        texts: dict[str, str] = {}
        for txn, found in parts.items():
            found.sort()
            plain = next((c for _, t, c in found if t.startswith("text/plain")), None)
            html = next((c for _, t, c in found if t.startswith("text/html")), None)
            if plain is not None:
                texts[txn] = plain.strip("\n")
            elif html is not None:
                texts[txn] = html_to_text(html)
        return texts

    # -- writes ------------------------------------------------------------------------
    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef:
        if not _KEY.fullmatch(key):
            raise PermanentError(f"{key!r} is not a write key", system=self.name)
        body: dict[str, Any] = {
            "Queue": self.rt.queue,
            "Subject": subject_with_key(draft.summary, key),
            "Content": draft.description or draft.summary,
            "ContentType": "text/plain",
        }
        if self.rt.requestor:
            body["Requestor"] = self.rt.requestor
        if draft.priority is not None:
            body["Priority"] = self._priority_number(draft.priority)
        where = f"POST {API_ROOT}/ticket"
        answer, _ = await self._write("POST", "/ticket", body)
        created = expect_object(answer, self.name, where, uncertain=True)
        tid = text_or_none(created.get("id"))
        if created.get("type") != "ticket" or tid is None or not _ID.fullmatch(tid):
            raise bad_shape(self.name, where, "$ is not a ticket reference", uncertain=True)
        return TicketRef(self.name, tid, tid)

    async def find_created(self, key: str) -> TicketRef | None:
        if not _KEY.fullmatch(key):
            return None
        query = f"Queue = {_quoted(self.rt.queue)} AND Subject LIKE 'ref {key}'"
        rows = await self._search("/tickets", query, "Subject")
        for row in rows:
            if f"[ref {key}]" in str(row.get("Subject") or ""):
                tid = str(row["id"])
                return TicketRef(self.name, tid, tid)
        return None

    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        tid = _rt_id(ticket_id)
        action = "correspond" if note.visibility.is_public else "comment"
        path = f"/ticket/{tid}/{action}"
        where = f"POST {API_ROOT}{path}"
        answer, resp = await self._write(
            "POST", path, {"Content": note.text, "ContentType": "text/plain"}
        )
        if (
            not isinstance(answer, list)
            or not answer
            or not all(isinstance(m, str) for m in answer)
        ):
            raise bad_shape(self.name, where, "$ is not a list of messages", uncertain=True)
        shown = next((NOTE_ANSWERS[m] for m in answer if m in NOTE_ANSWERS), None)
        if shown is None:
            raise PermanentError(
                f"{where}: Request Tracker refused: {'; '.join(answer)}", system=self.name
            )
        check_written(
            {"visibility": Visibility.PUBLIC.value if note.visibility.is_public else "internal"},
            {"visibility": shown},
            None,
            system=self.name,
            where=where,
            product=self.display_name,
        )
        found = _TXN_LOCATION.search(resp.headers.get("location", ""))
        if found is None:
            raise bad_shape(self.name, where, "no Location naming the transaction", uncertain=True)
        return found.group(1)

    async def find_note(
        self, ticket_id: str, key: str, note: NoteDraft, since: datetime | None = None
    ) -> str | None:
        start = None if since is None else since - WRITE_WINDOW_SLACK
        notes = await self.list_notes(ticket_id, start)
        return self.written_note(notes, note, since)

    def _priority_number(self, priority: str) -> int:
        text = priority.strip()
        if text.casefold() in PRIORITY_NAMES:
            return PRIORITY_NAMES[text.casefold()]
        if text.isdigit() and 0 <= int(text) <= 255:
            return int(text)
        raise PermanentError(
            f"Request Tracker priority must be a number (0-99) or Low/Medium/High, got "
            f"{priority!r}",
            system=self.name,
        )

    def _number_or_none(self, priority: str | None) -> int | None:
        try:
            return None if priority is None else self._priority_number(priority)
        except PermanentError:
            return None

    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        """Send only Status/Priority values that differ; re-read to prove them (RT answers
        200 with a message when it refuses a value)."""
        tid = _rt_id(ticket_id)
        where = f"PUT {API_ROOT}/ticket/{tid}"
        before = self._ticket(await self._get(f"/ticket/{tid}"), where)
        body: dict[str, Any] = {}
        if change.status is not None:
            wanted = change.status.strip().casefold()
            if wanted != (before.status or "").casefold():
                body["Status"] = wanted
        if change.priority is not None:
            number = self._priority_number(change.priority)
            if number != self._number_or_none(before.priority):
                body["Priority"] = number
        if not body:
            return
        answer, _ = await self._write("PUT", f"/ticket/{tid}", body)
        if not isinstance(answer, list):
            raise bad_shape(self.name, where, "$ is not a list of messages", uncertain=True)
        after = self._ticket(await self._get(f"/ticket/{tid}"), where)

        def shown(t: Ticket) -> dict[str, str | None]:
            number = self._number_or_none(t.priority)
            values = {"Status": t.status, "Priority": None if number is None else str(number)}
            return {k: values[k] for k in body}

        messages = "; ".join(str(m) for m in answer)
        check_written(
            {k: str(v) for k, v in body.items()},
            shown(after),
            shown(before),
            system=self.name,
            where=where,
            product=self.display_name,
            cause=f"RT said: {messages}"
            if messages
            else "RT answered no change: the "
            "integration user is probably not allowed to write it (ModifyTicket)",
        )

    # -- names ---------------------------------------------------------------------------
    async def lookup_names(
        self, wanted: Mapping[NameKind, frozenset[str]]
    ) -> Mapping[NameKind, NameLookup]:
        answers: dict[NameKind, NameLookup] = {
            NameKind.STATUS: NameLookup(known=frozenset(defaults.STATUSES))
        }
        body = expect_object(
            await self._get("/queues/all", {"fields": "Name", "per_page": 100}),
            self.name,
            "GET /queues/all",
        )
        items = expect_objects(body.get("items"), self.name, "GET /queues/all", "$.items")
        answers[NameKind.QUEUE] = NameLookup(
            known=frozenset(str(i["Name"]) for i in items if text_or_none(i.get("Name")))
        )
        return answers
