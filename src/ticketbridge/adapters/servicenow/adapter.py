"""ServiceNow Table API, used as a vendor side.

What this adapter reads and writes, relative to the instance root
(``https://acme.service-now.com``):

* ``GET /api/now/table/{table}`` with ``sysparm_query=sys_updated_on>=...^ORDERBYsys_updated_on``
  and ``sysparm_limit``/``sysparm_offset`` for polling; ``GET /api/now/table/{table}/{sys_id}``
  for a ticket;
* ``GET /api/now/table/sys_journal_field`` for comments and work notes (the incident
  itself returns them as empty strings);
* ``POST /api/now/table/{table}`` to open a ticket, keyed by ``correlation_id``;
* ``PATCH /api/now/table/{table}/{sys_id}`` for notes (``comments``/``work_notes``),
  state and impact/urgency;  every write asks for the record back
  (``sysparm_fields``) and is done only when the answer proves it (below);
* ``GET /api/now/table/sys_journal_field`` with ``sys_created_on>=`` reads only the
  entries since the last ones seen (entries are never edited);
* webhooks: an Outbound REST message carrying a shared secret header.

Choices where the API leaves room:

* Every read sends ``sysparm_display_value=false`` (codes, sys_ids and UTC times, not
  the integration user's labels and time zone) and ``sysparm_exclude_reference_link=true``
  (reference fields as plain sys_ids).
* Paging never stops on a short page alone (the limit is applied before ACLs): it
  follows ``Link: rel="next"``, else ``X-Total-Count``; with neither, a short page ends.
* ``priority`` is computed by the instance from impact x urgency, so writes set those:
  1 -> 1/1, 2 -> 1/2, 3 -> 2/2, 4 -> 2/3, 5 -> 3/3.
* Resolving or closing sends ``close_code``/``close_notes`` and putting on hold sends
  ``hold_reason``; the values are settings because they are per-instance choices.
* ``external_ref`` has no home here (the vendor ticket does not store the PSA number),
  so it is ignored.

Proof of a write: a 2xx is not enough.  A maintenance page, a proxy or a hibernating
instance answers 200 with HTML, and a field the integration user may not write (a
field ACL) is dropped silently: the instance answers 200 with the old value.  So a
write's answer must be the JSON record we wrote (``result.sys_id``), else the write
is uncertain and looked up before it is sent again; a field the answer shows still
holding its old value is refused naming the field.  A note is done when the answer
shows its journal entry: the PATCH asks for display values too
(``sysparm_display_value=true``), where a journal field lists its entries newest first
(its actual value is always an empty string); an instance whose answer shows no entry
is asked the journal table (``sys_journal_field``), one more call.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

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
from ticketbridge.adapters.kit.http import HttpClient, decode_json
from ticketbridge.adapters.kit.paging import CursorPaging, OffsetPaging, Page, latest_per_ticket
from ticketbridge.adapters.kit.payload import (
    bad_shape,
    expect_object,
    expect_objects,
    parse_utc,
    text_or_none,
)
from ticketbridge.adapters.kit.proof import check_record, check_written
from ticketbridge.adapters.kit.settings import (
    HeaderName,
    NonEmpty,
    PageSize,
    RequiredSecret,
    TableName,
    WebhookSecret,
)
from ticketbridge.adapters.servicenow import defaults
from ticketbridge.adapters.servicenow.webhooks import check_token, token_hints
from ticketbridge.domain import (
    ChangeBatch,
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
    TransientError,
)

__all__ = ["ServiceNowAdapter", "ServiceNowSettings"]

API_ROOT = "/api/now"
JOURNAL_TABLE = "sys_journal_field"
CORRELATION_DISPLAY = "ticketbridge"
POLL_QUERY_DEFAULT = f"correlation_display={CORRELATION_DISPLAY}"
#: The poll's listing order: a keyset over (updated, sys_id), unique and total.
POLL_ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"
SHORT_DESCRIPTION_MAX = 160

STATE_NAMES: Mapping[str, str] = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
STATE_CODES: Mapping[str, str] = {name.casefold(): code for code, name in STATE_NAMES.items()}
CLOSED_STATES = frozenset({"6", "7", "8"})
NEEDS_CLOSE_CODE = frozenset({"6", "7"})
ON_HOLD = "3"
HOLD_REASONS: Mapping[str, str] = {
    "1": "Awaiting Caller",
    "3": "Awaiting Problem",
    "4": "Awaiting Vendor",
    "5": "Awaiting Change",
}
#: priority -> (impact, urgency) under the default priority lookup rules.
IMPACT_URGENCY: Mapping[str, tuple[str, str]] = {
    "1": ("1", "1"),
    "2": ("1", "2"),
    "3": ("2", "2"),
    "4": ("2", "3"),
    "5": ("3", "3"),
}
_TICKET_FIELD_NAMES = (
    "sys_id",
    "number",
    "short_description",
    "description",
    "state",
    "hold_reason",
    "priority",
    "impact",
    "urgency",
    "company",
    "assigned_to",
    "correlation_id",
    "sys_created_on",
    "sys_updated_on",
    "sys_mod_count",
)
TICKET_FIELDS = ",".join(_TICKET_FIELD_NAMES)
NOTE_FIELDS = "sys_id,element,element_id,value,sys_created_on,sys_created_by"
#: What a write asks back: the record's identity and version.
PROOF_FIELDS = ("sys_id", "sys_mod_count", "sys_updated_on")
READ_PARAMS: Mapping[str, str] = {
    "sysparm_display_value": "false",
    "sysparm_exclude_reference_link": "true",
}

_SYS_ID = re.compile(r"[0-9a-f]{32}")
#: Values put into an encoded query: no ``^`` (the separator) and nothing odd.
_QUERY_SAFE = re.compile(r"[A-Za-z0-9_.:\-]+")
#: Fields rules may set on a record (``set_vendor_field``): plain column names ...
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,79}")
#: ... but never the ones ticketbridge relies on or the system owns.
_PROTECTED_FIELDS = frozenset(
    {
        "sys_id",
        "number",
        "correlation_id",
        "correlation_display",
        "comments",
        "work_notes",
        "sys_created_on",
        "sys_updated_on",
        "sys_mod_count",
        "sys_created_by",
        "sys_updated_by",
    }
)
_PRIORITY = re.compile(r"\s*([1-5])\b")


class ServiceNowSettings(AdapterSettings):
    """``systems.<name>.settings`` of a ServiceNow instance."""

    username: NonEmpty
    password: RequiredSecret
    table: TableName = "incident"
    #: Shared secret the Outbound REST message sends; without it every webhook is refused.
    webhook_token: WebhookSecret = None
    webhook_header: HeaderName = "X-Ticketbridge-Token"
    #: Rows per page (the Table API allows up to 10000).
    page_size: PageSize = Field(default=100, le=10000)
    #: ``close_code`` sent when resolving or closing (an instance choice value).
    close_code: str = Field(default="Resolved by caller", min_length=1)
    close_notes: str = Field(default="Resolved via ticketbridge", min_length=1)
    #: ``hold_reason`` sent when putting on hold: 1 Awaiting Caller, 3 Awaiting Problem,
    #: 4 Awaiting Vendor, 5 Awaiting Change.
    hold_reason: str = Field(default="1", min_length=1)
    #: Encoded query of the records the poll lists: by default the ones ticketbridge
    #: opened (``correlation_display``); ``""`` lists every record of the table.
    poll_query: str = POLL_QUERY_DEFAULT

    @field_validator("poll_query")
    @classmethod
    def _check_poll_query(cls, value: str) -> str:
        value = value.strip()
        words = ("ORDERBY", "GROUPBY", "javascript:")
        if any(word.casefold() in value.casefold() for word in words):
            raise ValueError("must be conditions only (no ORDERBY, GROUPBY or javascript:)")
        if value.startswith("^") or value.endswith("^"):
            raise ValueError("must not start or end with '^'")
        return value


def _format_query_time(when: datetime) -> str:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _sys_id(value: str) -> str:
    if not _SYS_ID.fullmatch(value):
        raise NotFoundError(f"{value!r} is not a ServiceNow sys_id")
    return value


def _query_value(value: str, what: str) -> str:
    if not _QUERY_SAFE.fullmatch(value):
        raise PermanentError(f"{what} {value!r} cannot be used in a ServiceNow query")
    return value


def _value(field: Any) -> str | None:
    """A field's actual value: references may come as ``{"value": ..., "link": ...}``."""
    if isinstance(field, dict):
        field = field.get("value")
    return text_or_none(field)


_V = TypeVar("_V")

#: Records whose latest own write's version is remembered (to skip its webhook).
_OWN_VERSIONS = 10_000
#: What the engine decides on, asked back by a note's PATCH (as display values): a write
#: whose answer shows them as the previous one did changed nothing but the journal.
_DECIDED_FIELDS = (
    "state",
    "hold_reason",
    "priority",
    "impact",
    "urgency",
    "assigned_to",
    "short_description",
    "company",
    "number",
)
#: Own versions remembered per record (webhooks may come late and out of order).
_OWN_PER_RECORD = 32
#: How long a webhook waits for the answer of our write to its record in flight (s).
ECHO_WAIT = 5.0


def _listed_version(change: TicketChange) -> str | None:
    """The listed record's ``sys_mod_count``: two changes within one second of
    ``sys_updated_on`` show the same time but not the same count."""
    count = _mod_count(change.ticket.fields.get("sys_mod_count")) if change.ticket else None
    return None if count is None else str(count)


def _mod_count(value: Any) -> int | None:
    """``sys_mod_count`` as a number (a display value may group digits: ``1,024``)."""
    text = _value(value)
    if text is None:
        return None
    digits = text.replace(",", "").replace(".", "").replace(" ", "").replace("\u00a0", "")
    return int(digits) if digits.isdigit() else None


def _remember(versions: OrderedDict[str, _V], sys_id: str, count: _V) -> None:
    versions[sys_id] = count
    versions.move_to_end(sys_id)
    while len(versions) > _OWN_VERSIONS:
        versions.popitem(last=False)


def _newest_entry_is(field: Any, text: str) -> bool:
    """Does a journal field's display value (``sysparm_display_value=true``) start with
    an entry holding ``text``?  The display value lists the entries newest first, each as
    a header line (``<time> - <author> (<field label>)``), the text and a blank line."""
    shown = field.get("display_value") if isinstance(field, dict) else field
    if not isinstance(shown, str) or "\n" not in shown:
        return False
    body = shown.split("\n", 1)[1]
    wanted = text.strip()
    return body.rstrip("\n") == wanted or body.startswith(wanted + "\n\n")


def _row_id(row: Mapping[str, Any]) -> str | None:
    """A row's ``sys_id`` (for paging's seen-twice check)."""
    return _value(row.get("sys_id"))


def _keyset_id(sys_id: str) -> str:
    """A row's sys_id for a keyset condition: a sys_id, or refused (it goes into a query)."""
    if not _SYS_ID.fullmatch(sys_id):
        raise PermanentError(f"{sys_id!r} is not a sys_id; the listing cannot continue after it")
    return sys_id


def _has_more(page: Page, limit: int) -> bool:
    """Whether rows follow this page: ``Link: rel="next"``, else ``X-Total-Count``, else a
    full page (the limit applies before ACLs, so a short page alone does not end it)."""
    resp = page.response
    if resp.headers.get("link"):
        return "next" in resp.links
    total = resp.headers.get("x-total-count", "").strip()
    if total.isdigit():
        offset = int(resp.request.url.params.get("sysparm_offset") or 0)
        return offset + limit < int(total)
    return len(page.items) >= limit


def _priority_code(priority: str) -> str:
    match = _PRIORITY.match(priority)
    if match is None:
        raise PermanentError(f"ServiceNow priority must be 1-5, got {priority!r}")
    return match.group(1)


class ServiceNowAdapter(TicketAdapter):
    """ServiceNow incidents (or another task table) through the Table API."""

    kind: ClassVar[str] = "servicenow"
    display_name: ClassVar[str] = "ServiceNow"
    sides: ClassVar[frozenset[Side]] = frozenset({Side.VENDOR})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.WEBHOOKS,
            Capability.CREATE_TICKET,
            Capability.ADD_NOTE,
            Capability.SET_STATUS,
            Capability.SET_PRIORITY,
            Capability.SET_FIELDS,
            Capability.FIND_BY_NUMBER,
        }
    )
    simulator: ClassVar[str | None] = "ticketbridge.adapters.servicenow.simulator:create_app"
    #: No product-wide quota: each instance's admin sets rate limit rules
    #: (``sys_rate_limit_rules``, requests per hour per user or role), so the
    #: operator configures ``request_budget`` to match the integration user's rule.
    request_budget: ClassVar[tuple[int, float] | None] = None
    driver: ClassVar[str | None] = "ticketbridge.adapters.servicenow.driver:ServiceNowDriver"
    settings_model: ClassVar[type[AdapterSettings]] = ServiceNowSettings
    known_statuses: ClassVar[tuple[str, ...] | None] = tuple(STATE_NAMES.values())
    known_priorities: ClassVar[tuple[str, ...] | None] = tuple(defaults.PRIORITY_RANKS)
    status_classes = defaults.STATUS_CLASSES
    priority_ranks = defaults.PRIORITY_RANKS
    field_aliases = defaults.FIELD_ALIASES
    closing_terms = defaults.CLOSING_TERMS

    def __init__(self, ctx: AdapterContext, settings: AdapterSettings) -> None:
        if not isinstance(settings, ServiceNowSettings):
            raise TypeError(f"expected ServiceNowSettings, got {type(settings).__name__}")
        self.sn: ServiceNowSettings = settings
        #: user_name -> display name, for note attribution (None: could not be read)
        self._people: dict[str, str | None] = {}
        #: sys_id -> the sys_mod_count our latest write left the record at, when every
        #: version before it was handled (so the write's echo need not be read)
        self._own_versions: OrderedDict[str, list[int]] = OrderedDict()
        #: sys_id -> the sys_mod_count of the version the engine last handled
        self._handled: OrderedDict[str, int] = OrderedDict()
        #: sys_id -> (sys_mod_count, decided fields) our latest note's answer showed
        self._answers: OrderedDict[str, tuple[int, tuple[str | None, ...]]] = OrderedDict()
        #: sys_id -> set when the write to it now in flight has its answer
        self._writing: dict[str, asyncio.Event] = {}
        super().__init__(ctx, settings)

    # -- construction -------------------------------------------------------
    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        root = ctx.base_url.rstrip("/").removesuffix(API_ROOT)
        return HttpClient(
            system=ctx.name,
            base_url=root,
            auth=httpx.BasicAuth(self.sn.username, self.sn.password.get_secret_value()),
            headers={"Accept": "application/json"},
            timeout=ctx.timeout,
            retry=ctx.retry,
            transport=ctx.transport,
        )

    @property
    def _table_path(self) -> str:
        return f"{API_ROOT}/table/{self.sn.table}"

    # -- HTTP helpers -------------------------------------------------------
    def _result(self, resp: httpx.Response, *, uncertain: bool = False) -> Any:
        where = f"{resp.request.method} {resp.request.url.path}"
        body = expect_object(decode_json(resp, self.name), self.name, where, uncertain=uncertain)
        if "result" not in body:
            raise bad_shape(self.name, where, "$.result is missing", uncertain=uncertain)
        return body["result"]

    async def _query(
        self, path: str, query: str, fields: str, *, limit: int, offset: int = 0
    ) -> tuple[list[dict[str, Any]], httpx.Response]:
        params = {
            "sysparm_query": query,
            "sysparm_fields": fields,
            "sysparm_limit": limit,
            "sysparm_offset": offset,
            **READ_PARAMS,
        }
        resp = await self.http.request("GET", path, params=params)
        rows = expect_objects(self._result(resp), self.name, f"GET {path}", "$.result")
        return rows, resp

    async def _query_all(self, path: str, query: str, fields: str) -> list[dict[str, Any]]:
        """Every row of a query, page by page; a short page alone does not end it."""
        paging = OffsetPaging(
            size=self.sn.page_size,
            system=self.name,
            where=f"GET {path}",
            key=_row_id,
            offset_param="sysparm_offset",
            limit_param="sysparm_limit",
        )

        async def fetch(params: Mapping[str, Any]) -> Page:
            limit, offset = params["sysparm_limit"], params["sysparm_offset"]
            rows, resp = await self._query(path, query, fields, limit=limit, offset=offset)
            return Page(rows, resp)

        return await paging.walk(fetch)

    async def _query_first(self, path: str, query: str, fields: str) -> dict[str, Any] | None:
        rows, _ = await self._query(path, query, fields, limit=1)
        return rows[0] if rows else None

    async def _raw(self, ticket_id: str, fields: str = TICKET_FIELDS) -> dict[str, Any]:
        path = f"{self._table_path}/{_sys_id(ticket_id)}"
        params = {"sysparm_fields": fields, **READ_PARAMS}
        resp = await self.http.request("GET", path, params=params)
        return expect_object(self._result(resp), self.name, f"GET {path}", "$.result")

    # -- reads ----------------------------------------------------------------
    async def check(self) -> None:
        params = {"sysparm_limit": 1, "sysparm_fields": "sys_id", **READ_PARAMS}
        resp = await self.http.request("GET", self._table_path, params=params)
        self._result(resp)

    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        return list((await self.changes_after(since)).changes)

    def _scoped(self, *conditions: str) -> str:
        """``poll_query`` AND-ed with ``conditions``: each OR group (``^NQ``) of the scope
        gets the conditions, since ``^NQ`` splits a whole query."""
        tail = "^".join(c for c in conditions if c)
        groups = self.sn.poll_query.split("^NQ") if self.sn.poll_query else [""]
        return "^NQ".join("^".join(p for p in (group, tail) if p) for group in groups)

    def _keyset_query(self, since: datetime | None, after: tuple[str, str] | None) -> str:
        """The poll's query from a keyset: rows after ``(updated, sys_id)`` when given,
        else rows updated at or after ``since``; ordered by the keyset."""
        if after is not None:
            stamp, sys_id = after
            later = self._scoped(f"sys_updated_on>{stamp}")
            same = self._scoped(f"sys_updated_on={stamp}", f"sys_id>{sys_id}")
            return f"{later}^NQ{same}^{POLL_ORDER}"
        if since is None:
            scoped = self._scoped()
        else:
            scoped = self._scoped(f"sys_updated_on>={_format_query_time(since)}")
        return f"{scoped}^{POLL_ORDER}" if scoped else POLL_ORDER

    async def changes_after(
        self, since: datetime | None, after: str | None = None, *, max_pages: int | None = None
    ) -> ChangeBatch:
        """Keyset pages over ``(sys_updated_on, sys_id)``, scoped by ``poll_query``.

        Each page starts after the last row read, so a row updated during the walk moves
        behind the cursor and is read there, never skipped.  ``sysparm_limit`` applies
        before ACLs: a page the integration user may read nothing of has no last row, so
        the next one moves on by offset from the same keyset.
        """
        path = self._table_path
        where = f"GET {path}"
        limit = self.sn.page_size
        start: tuple[str, str] | None = None
        if since is not None and after is not None:
            start = (_format_query_time(since), _query_value(after, "ticket id"))

        current: dict[str, Any] = {}  # the keyset and offset of the page being read

        async def fetch(paging: Mapping[str, Any]) -> Page:
            current.update(paging)
            query = self._keyset_query(since, paging["anchor"])
            # whole tickets: the engine need not read each changed one again
            rows, resp = await self._query(
                path, query, TICKET_FIELDS, limit=limit, offset=paging["offset"]
            )
            return Page(rows, resp)

        def next_params(page: Page) -> Mapping[str, Any] | None:
            if not _has_more(page, limit):
                return None
            if not page.items:  # every row hidden by ACLs: same keyset, next offset
                return {"anchor": current["anchor"], "offset": current["offset"] + limit}
            last = page.items[-1]
            sys_id = _value(last.get("sys_id"))
            if sys_id is None:
                raise bad_shape(self.name, where, "a row has no sys_id")
            updated = parse_utc(last.get("sys_updated_on"), self.name, where, "sys_updated_on")
            # both go back into the query: re-formatted and checked, never passed through
            return {"anchor": (_format_query_time(updated), _keyset_id(sys_id)), "offset": 0}

        paging = CursorPaging(
            first={"anchor": start, "offset": 0},
            next_params=next_params,
            system=self.name,
            where=where,
            key=_row_id,
            **({"max_pages": max_pages} if max_pages is not None else {}),
        )
        rows = await paging.walk(fetch)
        seen: list[tuple[str, datetime, Ticket | None]] = []
        for index, row in enumerate(rows):
            sys_id = _value(row.get("sys_id"))
            if sys_id is None:
                raise bad_shape(self.name, where, f"$.result[{index}].sys_id is missing")
            updated = parse_utc(
                row.get("sys_updated_on"), self.name, where, f"$.result[{index}].sys_updated_on"
            )
            seen.append((sys_id, updated, self._listed(row)))
        changes = [
            replace(change, own_write=self._own_listed(change), version=_listed_version(change))
            for change in latest_per_ticket(seen)
        ]
        return ChangeBatch(tuple(changes), complete=not paging.stopped_at_limit)

    def _own_listed(self, change: TicketChange) -> bool:
        """Does the listing show a version our own writes left the ticket at (with every
        version before it handled)?  Not only the latest: a poll that lists the ticket
        while our writes to it go on shows one of the earlier ones, and what follows it up
        to our latest is ours too; anyone else's change after it is a version not ours,
        listed by a later poll."""
        own = self._own_versions.get(change.ticket_id)
        shown = _mod_count(change.ticket.fields.get("sys_mod_count")) if change.ticket else None
        return own is not None and shown in own

    def _listed(self, raw: Mapping[str, Any]) -> Ticket | None:
        """A listing's ticket record, or ``None`` when it does not parse (the ticket is
        then read on its own, and fails there, for that ticket alone)."""
        try:
            return self._to_ticket(raw)
        except AdapterError:
            return None

    def _to_ticket(self, raw: Mapping[str, Any]) -> Ticket:
        where = f"GET {self._table_path}/{{sys_id}}"
        sys_id = _value(raw.get("sys_id"))
        if sys_id is None:
            raise bad_shape(self.name, where, "$.result.sys_id is missing")
        state = _value(raw.get("state"))
        hold = _value(raw.get("hold_reason"))
        hold_name = HOLD_REASONS.get(hold, hold) if hold is not None else None
        status = STATE_NAMES.get(state, state) if state is not None else None
        priority = _value(raw.get("priority"))
        created, updated = raw.get("sys_created_on"), raw.get("sys_updated_on")
        return Ticket(
            ref=TicketRef(system=self.name, id=sys_id, number=_value(raw.get("number"))),
            summary=str(raw.get("short_description") or ""),
            description=str(raw.get("description") or ""),
            status=status,
            status_class=self._class_of(state, status, hold_name),
            priority=priority,
            priority_rank=self.priority_rank_of(priority),
            company=_value(raw.get("company")),
            assignee=_value(raw.get("assigned_to")),
            created_at=parse_utc(created, self.name, where, "$.result.sys_created_on")
            if created
            else None,
            updated_at=parse_utc(updated, self.name, where, "$.result.sys_updated_on")
            if updated
            else None,
            updated_by=_value(raw.get("sys_updated_by")),
            fields={
                "state_code": state,
                "hold_reason": hold_name,
                "impact": _value(raw.get("impact")),
                "urgency": _value(raw.get("urgency")),
                "correlation_id": _value(raw.get("correlation_id")),
                "sys_mod_count": _value(raw.get("sys_mod_count")),
            },
        )

    def _class_of(self, state: str | None, status: str | None, hold: str | None) -> StatusClass:
        """The state's class: On Hold by its hold reason first; an unmapped state is
        ``closed`` when ServiceNow counts it closed, else ``working``."""
        if state == ON_HOLD and hold is not None:
            by_reason = self.status_class_of(defaults.HOLD_CLASS_KEY.format(reason=hold))
            if by_reason is not None:
                return by_reason
        found = self.status_class_of(status)
        if found is not None:
            return found
        return StatusClass.CLOSED if state in CLOSED_STATES else StatusClass.WORKING

    async def get_ticket(self, ticket_id: str) -> Ticket:
        return self._to_ticket(await self._raw(ticket_id))

    async def find_ticket(self, number: str) -> Ticket | None:
        number = number.strip()
        if not _QUERY_SAFE.fullmatch(number):
            return None
        row = await self._query_first(self._table_path, f"number={number}", TICKET_FIELDS)
        return self._to_ticket(row) if row is not None else None

    # -- notes ----------------------------------------------------------------
    def _journal_query(self, sys_id: str) -> str:
        return f"element_id={sys_id}^name={self.sn.table}^elementINcomments,work_notes"

    async def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[Note]:
        sys_id = _sys_id(ticket_id)
        path = f"{API_ROOT}/table/{JOURNAL_TABLE}"
        # Journal entries carry no sequence and sys_created_on has one-second precision;
        # sys_id is random, so it must never break ties: the listing's order does.
        # Entries are never edited: with ``since``, those created since then.
        query = self._journal_query(sys_id)
        if since is not None:
            query += f"^sys_created_on>={_format_query_time(since)}"
        query += "^ORDERBYsys_created_on"
        notes: list[Note] = []
        for index, row in enumerate(await self._query_all(path, query, NOTE_FIELDS)):
            where = f"GET {path}"
            note_id = _value(row.get("sys_id"))
            if note_id is None:
                raise bad_shape(self.name, where, f"$.result[{index}].sys_id is missing")
            element = _value(row.get("element"))
            visibility = {
                "comments": Visibility.PUBLIC,
                "work_notes": Visibility.INTERNAL,
            }.get(element or "", Visibility.UNKNOWN)
            created = parse_utc(
                row.get("sys_created_on"), self.name, where, f"$.result[{index}].sys_created_on"
            )
            notes.append(
                Note(
                    system=self.name,
                    ticket_id=sys_id,
                    id=note_id,
                    text=str(row.get("value") or ""),
                    visibility=visibility,
                    created_at=created,
                    author=await self._person(_value(row.get("sys_created_by"))),
                    kind=element,
                    sequence=index,
                    by_us=self._by_us(_value(row.get("sys_created_by"))),
                )
            )
        notes.sort(key=note_order)
        return notes

    async def _person(self, user_name: str | None) -> str | None:
        """The display name of a journal entry's author, falling back to the user name.

        ``sys_journal_field.sys_created_by`` holds the user name; ``sys_user.name``
        is what people recognise.  Looked up once per user; a user the integration
        may not read is shown by user name.
        """
        if not user_name or not _QUERY_SAFE.fullmatch(user_name):
            return user_name
        if user_name not in self._people:
            try:
                row = await self._query_first(
                    f"{API_ROOT}/table/sys_user", f"user_name={user_name}", "name,user_name"
                )
            except PermanentError:
                row = None
            name = _value(row.get("name")) if row is not None else None
            self._people[user_name] = name
        return self._people[user_name] or user_name

    def _by_us(self, user_name: str | None) -> bool:
        """Was the journal entry written by the integration user (``sys_created_by`` is
        the author's ``user_name``, the one we authenticate with)?"""
        return user_name is not None and user_name.casefold() == self.sn.username.casefold()

    async def find_note(
        self, ticket_id: str, key: str, note: NoteDraft, since: datetime | None = None
    ) -> str | None:
        """Our journal entry with this body: written by the integration user, not before
        ``since`` (ServiceNow journal entries have no field of their own for a key)."""
        return self.written_note(await self.list_notes(_sys_id(ticket_id)), note, since)

    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        sys_id = _sys_id(ticket_id)
        field = "comments" if note.visibility is Visibility.PUBLIC else "work_notes"
        result = await self._patch(
            sys_id, {field: note.text}, fields=[field, *_DECIDED_FIELDS], display=True
        )
        self._wrote(sys_id, result)  # before any await: a webhook may be waiting on it
        if _newest_entry_is(result.get(field), note.text):
            # proven by the answer itself; the entry's sys_id is not shown there (echoes
            # are told by author: the integration user wrote it)
            return None
        # an instance that shows no journal in the answer: the journal table proves it
        try:  # the entry just written: the newest one of ours with this body
            found = self.written_note(await self.list_notes(sys_id), note, None, newest=True)
        except TransientError:
            return None  # the note is written; its id is found later if needed
        if found is None:
            raise PermanentError(
                f"PATCH {self._table_path}/{sys_id}: ServiceNow answered success but stored no "
                f"{field} entry: the integration user is probably not allowed to write "
                f"{field} (a field ACL), so the instance dropped it silently",
                system=self.name,
            )
        return found

    # -- tickets: create ---------------------------------------------------------
    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef:
        body: dict[str, Any] = dict(draft.account)
        body.update(
            short_description=draft.summary[:SHORT_DESCRIPTION_MAX],
            description=draft.description,
            correlation_id=_query_value(key, "key"),
            correlation_display=CORRELATION_DISPLAY,
        )
        if draft.priority is not None:
            body["impact"], body["urgency"] = IMPACT_URGENCY[_priority_code(draft.priority)]
        path = self._table_path
        where = f"POST {path}"
        answer = await self.http.write(
            "POST",
            path,
            params={"sysparm_fields": "sys_id,number,correlation_id", **READ_PARAMS},
            json=body,
        )
        result = self._written(answer, where)
        sys_id = _value(result.get("sys_id"))
        if sys_id is None:
            raise bad_shape(self.name, where, "$.result.sys_id is missing", uncertain=True)
        # Without its correlation_id the ticket cannot be found by key: a retry would
        # open a second one.
        check_written(
            {"correlation_id": body["correlation_id"]},
            {"correlation_id": _value(result.get("correlation_id"))},
            None,
            system=self.name,
            where=f"{where} (ticket {sys_id})",
            product=self.display_name,
        )
        return TicketRef(system=self.name, id=sys_id, number=_value(result.get("number")))

    async def find_created(self, key: str) -> TicketRef | None:
        query = (
            f"correlation_id={_query_value(key, 'key')}"
            f"^correlation_display={CORRELATION_DISPLAY}^ORDERBYsys_created_on"
        )
        row = await self._query_first(self._table_path, query, "sys_id,number")
        if row is None:
            return None
        sys_id = _value(row.get("sys_id"))
        if sys_id is None:
            raise bad_shape(self.name, f"GET {self._table_path}", "$.result[0].sys_id is missing")
        return TicketRef(system=self.name, id=sys_id, number=_value(row.get("number")))

    # -- tickets: update ---------------------------------------------------------
    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        if change.queue is not None or change.assignee is not None or change.group is not None:
            raise PermanentError(
                "ServiceNow tickets have no queue, group or assignee to set here; "
                "use fields (e.g. assignment_group)",
                system=self.name,
            )
        for name in change.fields:
            if not _FIELD_NAME.fullmatch(name) or name in _PROTECTED_FIELDS:
                raise PermanentError(f"field {name!r} may not be set", system=self.name)
        if change.status is None and change.priority is None and not change.fields:
            return  # external_ref has no field at ServiceNow
        body: dict[str, str] = {}
        target_state = None
        if change.status is not None:
            target_state = STATE_CODES.get(change.status.strip().casefold())
            if target_state is None:
                raise PermanentError(
                    f"unknown ServiceNow state {change.status!r}", system=self.name
                )
        target_priority = _priority_code(change.priority) if change.priority else None
        wanted = ",".join(
            dict.fromkeys(
                [
                    "sys_id",
                    "state",
                    "priority",
                    "impact",
                    "urgency",
                    "hold_reason",
                    "close_code",
                    "close_notes",
                    *sorted(change.fields),
                ]
            )
        )
        raw = await self._raw(ticket_id, wanted)
        for name, value in sorted(change.fields.items()):
            if _value(raw.get(name)) != value:
                body[name] = value
        if target_state is not None and _value(raw.get("state")) != target_state:
            body["state"] = target_state
            if target_state == ON_HOLD:
                body["hold_reason"] = self.sn.hold_reason
            if target_state in NEEDS_CLOSE_CODE:
                body["close_code"] = self.sn.close_code
                body["close_notes"] = self.sn.close_notes
        if target_priority is not None and _value(raw.get("priority")) != target_priority:
            body["impact"], body["urgency"] = IMPACT_URGENCY[target_priority]
        if body:
            sys_id = _sys_id(ticket_id)
            result = await self._patch(sys_id, body, fields=sorted(body))
            check_written(
                body,
                {name: _value(result[name]) for name in body if name in result},
                {name: _value(raw[name]) for name in body if name in raw},
                system=self.name,
                where=f"PATCH {self._table_path}/{sys_id}",
                product=self.display_name,
                missing_cause=f"the {self.sn.table} table has no such column, or the "
                "integration user may not read it (the instance drops unknown fields silently)",
            )

    # -- proof of writes ------------------------------------------------------------
    def _written(self, answer: Any, where: str) -> dict[str, Any]:
        """``$.result`` of a write's JSON answer; any other shape leaves the write unproven."""
        body = expect_object(answer, self.name, where, uncertain=True)
        if "result" not in body:
            raise bad_shape(self.name, where, "$.result is missing", uncertain=True)
        return expect_object(body["result"], self.name, where, "$.result", uncertain=True)

    async def _patch(
        self,
        sys_id: str,
        body: Mapping[str, str],
        *,
        fields: list[str] | None = None,
        display: bool = False,
    ) -> dict[str, Any]:
        """PATCH the record and return the answer's record, proven to be the one we wrote.

        ``display``: ask for display values (``sysparm_display_value=true``), which is
        where a journal field shows its entries; only ``sys_id`` of the proof fields is
        read then (the others come in the user's time zone and labels)."""
        path = f"{self._table_path}/{sys_id}"
        params = {"sysparm_fields": ",".join([*PROOF_FIELDS, *(fields or [])]), **READ_PARAMS}
        if display:
            params["sysparm_display_value"] = "true"
        done = self._writing.setdefault(sys_id, asyncio.Event())
        try:
            answer = await self.http.write("PATCH", path, params=params, json=dict(body))
            result = self._written(answer, f"PATCH {path}")
            where = f"PATCH {path}"
            check_record(_value(result.get("sys_id")), sys_id, system=self.name, where=where)
        finally:
            if self._writing.get(sys_id) is done:
                del self._writing[sys_id]
            done.set()
        return result

    # -- names ----------------------------------------------------------------
    async def lookup_names(
        self, wanted: Mapping[NameKind, frozenset[str]]
    ) -> Mapping[NameKind, NameLookup]:
        """States and priorities from ``sys_choice``, fields from ``sys_dictionary`` (the
        ticket table and ``task``, which it extends), groups from ``sys_user_group`` and
        people from ``sys_user``.  A table the integration user may not read (403) is that
        kind's error."""
        table = self.sn.table
        tables = f"nameIN{table},task"
        reads: dict[NameKind, tuple[str, str, tuple[str, ...]]] = {
            NameKind.STATUS: ("sys_choice", f"{tables}^element=state^inactive=false", ("label",)),
            NameKind.PRIORITY: (
                "sys_choice",
                f"{tables}^element=priority^inactive=false",
                ("value", "label"),
            ),
            NameKind.FIELD: ("sys_dictionary", f"{tables}^elementISNOTEMPTY", ("element",)),
            NameKind.GROUP: ("sys_user_group", "active=true", ("name",)),
            NameKind.ASSIGNEE: ("sys_user", "active=true", ("user_name",)),
        }
        out: dict[NameKind, NameLookup] = {}
        for kind, (source, query, columns) in reads.items():
            if kind not in wanted:
                continue
            path = f"{API_ROOT}/table/{source}"
            try:
                rows = await self._query_all(path, query, ",".join(("sys_id", *columns)))
            except AuthFailedError as exc:
                out[kind] = NameLookup(error=str(exc))
                continue
            out[kind] = NameLookup(
                frozenset(t for r in rows for c in columns if (t := _value(r.get(c))) is not None)
            )
        return out

    # -- webhooks -------------------------------------------------------------
    def _webhook_token(self) -> str | None:
        token = self.sn.webhook_token
        return token.get_secret_value() if token is not None else None

    def webhook_precheck(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """The shared-secret header is checked before the body is read."""
        check_token(headers, self.sn.webhook_header, self._webhook_token())

    async def webhook_hints(self, request: WebhookRequest) -> list[WebhookHint]:
        """The incident the message names, unless the message announces the very version
        our own write left it at (the Business Rule fires for our writes too): nothing
        else changed then, so there is nothing to read."""
        hints = token_hints(request, self.sn.webhook_header, self._webhook_token())
        return [hint for hint in hints if not self._own_version(hint)]

    async def own_echo(self, hint: WebhookHint) -> bool:
        writing = self._writing.get(hint.ticket_id)
        if writing is not None and not self._own_version(hint):
            # the webhook came before our write's answer: wait for it, not for long
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writing.wait()), ECHO_WAIT)
        return self._own_version(hint)

    def _own_version(self, hint: WebhookHint) -> bool:
        """Is the hint's version one our own writes made (after versions all handled)?"""
        own = self._own_versions.get(hint.ticket_id)
        prefix = f"{hint.ticket_id}:"
        if own is None or not hint.delivery_key.startswith(prefix):
            return False
        return _mod_count(hint.delivery_key.removeprefix(prefix)) in own

    def handled(self, ticket: Ticket) -> None:
        count = _mod_count(ticket.fields.get("sys_mod_count"))
        if count is not None:
            _remember(self._handled, ticket.ref.id, count)

    def _wrote(self, sys_id: str, result: Mapping[str, Any]) -> None:
        """Remember the version a note of ours left the record at when it holds nothing
        new: the version before it was handled by the engine (or was our own), and it was
        our own write too, answered with the same decided fields (a Business Rule that
        moved the state on our comment shows there).  Its webhook and its listing are
        then not read (see webhook_hints, changes_after); the first note after someone
        else's change always is."""
        count = _mod_count(result.get("sys_mod_count"))
        if count is None:
            return
        shown = tuple(_value(result.get(name)) for name in _DECIDED_FIELDS)
        previous = self._answers.get(sys_id)
        _remember(self._answers, sys_id, (count, shown))
        own = self._own_versions.get(sys_id, [])
        settled = count - 1 == self._handled.get(sys_id) or bool(own and count - 1 == own[-1])
        if settled and previous == (count - 1, shown):
            _remember(self._own_versions, sys_id, [*own[-_OWN_PER_RECORD + 1 :], count])
        # else something changed it in between that was not handled yet: this version's
        # webhook is read (earlier own versions stay known: their webhooks may come late)
