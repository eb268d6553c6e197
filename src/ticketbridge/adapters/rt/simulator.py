"""Request Tracker 5's REST2 API, as much of it as the adapter uses, over an :class:`RtWorld`.

Served under ``/rt/REST/2.0`` (``$WebPath`` ``/rt``), behaving as RT 5.0.3 was seen to::

    GET  /rt                                 {"Version": ..., "Plugins": []}
    GET  /queue/{id|name}, /queues/all       queues
    POST /ticket                             201 {"id": "1", "type": "ticket", "_url": ...}
    GET  /ticket/{id}                        the ticket (404 {"message": "Not Found"})
    PUT  /ticket/{id}                        200 ["Ticket 1: Status changed from ..."]; an
                                             unknown status is a message, still 200
    POST /ticket/{id}/correspond|comment     201 ["Correspondence added"] / ["Comments added"],
                                             Location: /rt/REST/2.0/transaction/{id}
    GET  /ticket/{id}/attachments, /history  collections
    GET  /tickets?query=<TicketSQL>          search; total/pages/next_page
    GET  /transactions?query=<TransactionSQL> search; total and next_page null (RT 5.0.3
                                             gives no count of transactions to a user who
                                             is not a superuser)

Faithful where the adapter depends on it: token auth (``Authorization: token <t>`` or
``?token=``; 401 ``{"message": "Unauthorized"}``, but a ``Mozilla`` User-Agent or any
Cookie turns it into ``302 Location: /rt/``, and ``/rt/`` is the HTML login page);
``_url``/``type``/``id`` references; ``page``/``per_page`` (default 20, at most 100);
TicketSQL and TransactionSQL parsed strictly (an unknown field or a broken query is a 400
``{"message": ...}`` as RT's), dates read as ``YYYY-MM-DD HH:MM:SS`` in UTC and an ISO
8601 value (``2026-01-05T09:00:00Z``) silently matching everything, as RT does;
``orderby``/``order`` repeated; and RT's automatic status change: a correspondence on a
``new``, ``resolved`` or ``rejected`` ticket opens it (a Status transaction by
``RT_System``), a correspondence on a ``stalled`` one does not (RT 5.0.3's default
scrips).  A correspondence also records the notification mail (an ``EmailRecord``
transaction with ``multipart/alternative``, ``text/plain`` and ``text/html`` parts), and a
message sent as ``text/html`` is stored as HTML only.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ticketbridge.clock import utcnow
from ticketbridge.sandbox._faults import FaultPlan, RequestLog, SandboxMiddleware, admin_router

__all__ = [
    "AGENT_TOKEN",
    "AGENT_USER",
    "API_USER",
    "DEFAULT_QUEUE",
    "DEFAULT_TOKEN",
    "LOGIN_HINT",
    "RtWorld",
    "TicketSqlError",
    "create_app",
    "parse_query",
]

API_USER = "ticketbridge"
AGENT_USER = "vendor.agent"
DEFAULT_TOKEN = "1-14-ec8b09ef5b5fdb9ac1dd3be0017144a1"  # noqa: S105 - simulator credential
AGENT_TOKEN = "1-15-0c1e7cbd1e6f4f3a8d2b9a7e5c3d1f00"  # noqa: S105 - simulator credential
DEFAULT_QUEUE = "Vendor Support"
WEB_PATH = "/rt"
API = f"{WEB_PATH}/REST/2.0"
STATUSES = ("new", "open", "stalled", "resolved", "rejected", "deleted")
LOGIN_HINT = f" (base_url .../rt; user {API_USER}, token {DEFAULT_TOKEN})"
INACTIVE = frozenset({"new", "resolved", "rejected"})  # opened by a correspondence
PRIORITY_BUCKETS = ((100, "High"), (50, "Medium"), (0, "Low"))
LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Login</title></head>
<body><div id="login-box"><form id="login" name="login" method="post"
action="/rt/NoAuth/Login.html"><input name="user" /><input type="password" name="pass" />
</form></div></body></html>
"""


@dataclass
class Attachment:
    id: int
    txn: int
    content_type: str
    content: str
    filename: str = ""


@dataclass
class Txn:
    id: int
    ticket: int
    type: str
    creator: str
    created: datetime
    field: str = ""
    old: str = ""
    new: str = ""


@dataclass
class SimTicket:
    id: int
    queue: int
    subject: str
    status: str
    priority: int
    requestors: list[str]
    owner: str
    creator: str
    created: datetime
    updated: datetime


@dataclass
class RtWorld:
    """The state of one simulated RT; tests may change it directly."""

    clock: Callable[[], datetime] = utcnow
    queues: dict[int, str] = field(default_factory=lambda: {1: "General", 3: DEFAULT_QUEUE})
    tokens: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_TOKEN: API_USER, AGENT_TOKEN: AGENT_USER}
    )
    tickets: dict[int, SimTicket] = field(default_factory=dict)
    txns: list[Txn] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _txn_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(40))
    _att_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def queue_id(self, name_or_id: str) -> int | None:
        if name_or_id.isdigit() and int(name_or_id) in self.queues:
            return int(name_or_id)
        return next((k for k, v in self.queues.items() if v == name_or_id), None)

    def record(self, ticket: SimTicket, type_: str, creator: str, **values: str) -> Txn:
        txn = Txn(next(self._txn_ids), ticket.id, type_, creator, self.now(), **values)
        self.txns.append(txn)
        ticket.updated = txn.created
        return txn

    def attach(self, txn: Txn, content_type: str, content: str) -> None:
        self.attachments.append(Attachment(next(self._att_ids), txn.id, content_type, content))

    def mail_record(self, ticket: SimTicket, text: str) -> None:
        """The notification RT mails to the requestors, recorded as an EmailRecord."""
        if not ticket.requestors:
            return
        txn = self.record(ticket, "EmailRecord", "RT_System")
        self.attach(txn, "multipart/alternative", "")
        self.attach(txn, "text/plain", f"{text}\n\n")
        self.attach(txn, "text/html", f"<pre>{text}</pre>\n")

    def open_ticket(
        self,
        creator: str,
        queue: int,
        subject: str,
        content: str | None,
        content_type: str = "text/plain",
        requestors: list[str] | None = None,
        priority: int = 0,
    ) -> SimTicket:
        now = self.now()
        ticket = SimTicket(
            id=next(self._ids),
            queue=queue,
            subject=subject,
            status="new",
            priority=priority,
            requestors=list(requestors or []),
            owner="Nobody",
            creator=creator,
            created=now,
            updated=now,
        )
        self.tickets[ticket.id] = ticket
        txn = self.record(ticket, "Create", creator)
        if content:
            self.attach(txn, content_type, content)
        self.mail_record(ticket, f"Greetings, your ticket {ticket.id} has been created.")
        return ticket

    def note(
        self, ticket: SimTicket, kind: str, creator: str, content: str, content_type: str
    ) -> Txn:
        txn = self.record(ticket, kind, creator)
        self.attach(txn, content_type, content)
        if kind == "Correspond":
            self.mail_record(ticket, content)
            if ticket.status in INACTIVE:  # On Correspond Open Inactive Tickets
                old, ticket.status = ticket.status, "open"
                self.record(ticket, "Status", "RT_System", field="Status", old=old, new="open")
        return txn

    def set_status(self, ticket: SimTicket, status: str, creator: str) -> str:
        old, ticket.status = ticket.status, status
        self.record(ticket, "Status", creator, field="Status", old=old, new=status)
        return f"Ticket {ticket.id}: Status changed from '{old}' to '{status}'"


# -- TicketSQL / TransactionSQL ----------------------------------------------------------------


class TicketSqlError(ValueError):
    """A query RT refuses (400)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>!=|<=|>=|=|<|>|\bNOT\s+LIKE\b|\bLIKE\b)|(?P<agg>\bAND\b|\bOR\b)"
    r"|(?P<word>'?[A-Za-z_][A-Za-z0-9_.{}]*'?|-?[0-9]+))",
    re.IGNORECASE,
)

#: A condition: (field, operator, value, whether the value was quoted).
Cond = tuple[str, str, str, bool]
Tree = Any  # ("and"|"or", [Tree, ...]) or Cond

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?")


def _tokens(query: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    query = query.rstrip()
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise TicketSqlError(f"Wrong query, cannot parse '{query[pos:]}'")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def parse_query(query: str, fields: frozenset[str]) -> Tree:
    """Parse TicketSQL (AND binds tighter than OR, parentheses group)."""
    tokens = _tokens(query)
    if not tokens:
        raise TicketSqlError("Wrong query, empty")
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise TicketSqlError(
                f"Incomplete query, last element is not close paren or value in '{query}'"
            )
        pos += 1
        return tokens[pos - 1]

    def condition() -> Tree:
        kind, text = take()
        if kind == "lp":
            inner = disjunction()
            if take()[0] != "rp":
                raise TicketSqlError(f"Wrong query, missing close paren in '{query}'")
            return inner
        if kind not in ("word", "str"):
            raise TicketSqlError(f"Wrong query, unexpected '{text}' in '{query}'")
        name = text.strip("'\"")
        base = name.split(".", 1)[0]
        if base.casefold() not in {f.casefold() for f in fields}:
            raise TicketSqlError(f"Unknown field: {name}")
        op_kind, op = take()
        if op_kind != "op":
            raise TicketSqlError(f"Wrong query, expecting an operator after '{name}'")
        value_kind, value = take()
        if value_kind == "str":
            unquoted = re.sub(r"\\(.)", r"\1", value[1:-1])
            return (name, " ".join(op.upper().split()), unquoted, True)
        if value_kind == "word" and re.fullmatch(r"-?[0-9]+", value):
            return (name, " ".join(op.upper().split()), value, False)
        raise TicketSqlError(f"Wrong query, no such column '{value}' in '{query}'")

    def conjunction() -> Tree:
        items = [condition()]
        while (nxt := peek()) is not None and nxt[0] == "agg" and nxt[1].upper() == "AND":
            take()
            items.append(condition())
        return items[0] if len(items) == 1 else ("and", items)

    def disjunction() -> Tree:
        items = [conjunction()]
        while (nxt := peek()) is not None and nxt[0] == "agg" and nxt[1].upper() == "OR":
            take()
            items.append(conjunction())
        return items[0] if len(items) == 1 else ("or", items)

    tree = disjunction()
    if pos != len(tokens):
        raise TicketSqlError(
            f"Incomplete query, last element is not close paren or value in '{query}'"
        )
    return tree


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if op == "=":
        return bool(actual == wanted)
    if op == "!=":
        return bool(actual != wanted)
    if op == "<":
        return bool(actual < wanted)
    if op == ">":
        return bool(actual > wanted)
    if op == "<=":
        return bool(actual <= wanted)
    if op == ">=":
        return bool(actual >= wanted)
    raise TicketSqlError(f"Wrong operator {op}")


def _date_match(actual: datetime, op: str, value: str) -> bool:
    found = _DATE.fullmatch(value.strip())
    if found is None:
        return True  # RT reads what it cannot parse (an ISO "T...Z" value) as no limit
    year, month, day, hour, minute, second = found.groups()
    wanted = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        tzinfo=UTC,
    )
    if op == "=":  # RT: the whole day
        return wanted.date() == actual.date() if hour is None else actual == wanted
    return _compare(actual, op, wanted)


def _text_match(actual: str, op: str, value: str) -> bool:
    if op == "LIKE":
        return value.casefold() in actual.casefold()
    if op == "NOT LIKE":
        return value.casefold() not in actual.casefold()
    return _compare(actual.casefold(), op, value.casefold())


def evaluate(tree: Tree, lookup: Callable[[str], Any]) -> bool:
    if isinstance(tree, tuple) and tree and tree[0] in ("and", "or"):
        results = (evaluate(sub, lookup) for sub in tree[1])
        return all(results) if tree[0] == "and" else any(results)
    name, op, value, _quoted = tree
    actual = lookup(name)
    if isinstance(actual, datetime):
        return _date_match(actual, op, value)
    if isinstance(actual, int):
        if not re.fullmatch(r"-?[0-9]+", value):
            return False
        return _compare(actual, op, int(value)) if op not in ("LIKE", "NOT LIKE") else False
    return _text_match(str(actual), op, value)


# -- the app -------------------------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_renderer(status: int, body: Any) -> tuple[bytes, str]:
    payload = body if body is not None else {"message": f"status {status}"}
    return json.dumps(payload).encode(), "application/json; charset=utf-8"


def create_app(
    world: RtWorld | None = None,
    *,
    token: str = DEFAULT_TOKEN,
    base_url: Callable[[], str] | None = None,
) -> FastAPI:
    """The simulator as an ASGI app (its world at ``app.state.world``).

    ``base_url`` gives ``$WebBaseURL`` (what every ``_url`` and ``next_page`` is built
    from); by default the request's own scheme and host."""
    world = world if world is not None else RtWorld()
    if token not in world.tokens:
        world.tokens[token] = API_USER
    plan, log = FaultPlan(), RequestLog()
    app = FastAPI(title="Request Tracker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world, app.state.faults, app.state.requests = world, plan, log
    app.add_middleware(SandboxMiddleware, plan=plan, log=log, error_renderer=_error_renderer)
    app.include_router(admin_router(plan, log))

    def message(status: int, text: str) -> JSONResponse:
        return JSONResponse({"message": text}, status_code=status)

    def root_of(request: Request) -> str:
        if base_url is not None:
            return base_url().rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}"

    def user_of(request: Request) -> str | Response:
        header = request.headers.get("authorization", "")
        given = header[6:].strip() if header.lower().startswith("token ") else None
        given = given or request.query_params.get("token")
        user = world.tokens.get(given or "")
        if user is not None:
            return user
        agent = request.headers.get("user-agent", "")
        if "mozilla" in agent.lower() or "cookie" in request.headers:
            return Response(status_code=302, headers={"Location": f"{WEB_PATH}/"})
        return message(401, "Unauthorized")

    def ref(request: Request, kind: str, ident: Any) -> dict[str, Any]:
        return {"type": kind, "id": str(ident), "_url": f"{root_of(request)}{API}/{kind}/{ident}"}

    def ticket_json(request: Request, t: SimTicket) -> dict[str, Any]:
        root = root_of(request)
        return {
            "id": t.id,
            "Subject": t.subject,
            "Status": t.status,
            "Priority": str(t.priority),
            "InitialPriority": "0",
            "FinalPriority": "0",
            "Queue": ref(request, "queue", t.queue),
            "Owner": ref(request, "user", t.owner),
            "Creator": ref(request, "user", t.creator),
            "Requestor": [ref(request, "user", r) for r in t.requestors],
            "Cc": [],
            "AdminCc": [],
            "Type": "ticket",
            "EffectiveId": ref(request, "ticket", t.id),
            "Created": _iso(t.created),
            "LastUpdated": _iso(t.updated),
            "Started": "1970-01-01T00:00:00Z",
            "Resolved": "1970-01-01T00:00:00Z",
            "Due": "1970-01-01T00:00:00Z",
            "CustomFields": [],
            "_hyperlinks": [
                {"ref": "self", "type": "ticket", "id": t.id, "_url": f"{root}{API}/ticket/{t.id}"},
                {"ref": "history", "_url": f"{root}{API}/ticket/{t.id}/history"},
                {"ref": "correspond", "_url": f"{root}{API}/ticket/{t.id}/correspond"},
                {"ref": "comment", "_url": f"{root}{API}/ticket/{t.id}/comment"},
            ],
        }

    def txn_value(request: Request, txn: Txn, name: str) -> Any:
        values: dict[str, Any] = {
            "Type": txn.type,
            "Created": _iso(txn.created),
            "Creator": ref(request, "user", txn.creator),
            "Field": txn.field,
            "OldValue": txn.old,
            "NewValue": txn.new,
            "ObjectType": "RT::Ticket",
            "ObjectId": str(txn.ticket),
            "Object": ref(request, "ticket", txn.ticket),
        }
        return values.get(name)

    def attachment_value(att: Attachment, name: str) -> Any:
        values: dict[str, Any] = {
            "TransactionId": str(att.txn),
            "ContentType": att.content_type,
            "Content": att.content,
            "Filename": att.filename,
            "Subject": "",
        }
        return values.get(name)

    def page_of(
        request: Request,
        kind: str,
        rows: list[Any],
        value: Callable[[Any, str], Any],
        ident: Callable[[Any], int],
        sortable: Mapping[str, Callable[[Any], Any]],
        *,
        counted: bool,
    ) -> dict[str, Any]:
        params = request.query_params
        orderby = params.getlist("orderby")
        orders = params.getlist("order")
        keys: list[tuple[Callable[[Any], Any], bool]] = []
        for index, name in enumerate(orderby):
            order = (orders[index] if index < len(orders) else "ASC").upper()
            getter = sortable.get(name.casefold())
            if getter is not None:
                keys.append((getter, order == "DESC"))
        if not keys:
            keys = [(ident, False)]
        for getter, desc in reversed(keys):
            rows = sorted(rows, key=getter, reverse=desc)
        per_page_text = params.get("per_page") or "20"
        per_page = int(per_page_text) if per_page_text.isdigit() else 20
        per_page = 20 if per_page == 0 else min(per_page, 100)
        page_text = params.get("page") or "1"
        page = max(1, int(page_text)) if page_text.isdigit() else 1
        chunk = rows[(page - 1) * per_page : page * per_page]
        wanted = [f for f in (params.get("fields") or "").split(",") if f]
        items = []
        for row in chunk:
            item = {
                "type": kind,
                "id": str(ident(row)),
                "_url": ref(request, kind, ident(row))["_url"],
            }
            for name in wanted:
                got = value(row, name)
                if got is not None:
                    item[name] = got
            items.append(item)
        result: dict[str, Any] = {
            "count": len(items),
            "page": page,
            "per_page": per_page,
            "total": len(rows) if counted else None,
            "items": items,
        }
        pages = -(-len(rows) // per_page) if counted else None
        result["pages"] = pages if pages else (0.0 if counted else None)
        if pages:
            others = [(k, v) for k, v in params.multi_items() if k != "page"]
            path = f"{root_of(request)}{request.url.path}"
            if page < pages:
                result["next_page"] = f"{path}?{urlencode([*others, ('page', page + 1)])}"
            if page > 1:
                prev = min(page - 1, pages)
                result["prev_page"] = f"{path}?{urlencode([*others, ('page', prev)])}"
        return result

    api = APIRouter(prefix=API)

    async def body_of(request: Request) -> tuple[dict[str, Any], str | None]:
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("text/plain"):
            return {"Content": raw.decode(), "ContentType": "text/plain"}, None
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {}, "JSON text must be an object"
        return (body, None) if isinstance(body, dict) else ({}, "JSON object required")

    @api.get("/rt")
    async def version(request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        return {"Version": "5.0.3+dfsg-3~deb12u6", "Plugins": []}

    @api.get("/queue/{name}")
    async def get_queue(name: str, request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        qid = world.queue_id(name)
        if qid is None:
            return message(404, "Not Found")
        return {"id": qid, "Name": world.queues[qid], "Lifecycle": "default", "Disabled": "0"}

    @api.get("/queues/all")
    async def all_queues(request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        rows = sorted(world.queues)
        return page_of(
            request,
            "queue",
            rows,
            lambda q, n: world.queues[q] if n == "Name" else None,
            lambda q: q,
            {"id": lambda q: q},
            counted=True,
        )

    @api.post("/ticket")
    async def create_ticket(request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        body, problem = await body_of(request)
        if problem:
            return message(400, problem)
        qid = world.queue_id(str(body.get("Queue", "")))
        if qid is None:
            return message(400, "Could not create ticket. Queue not set")
        requestor = body.get("Requestor")
        requestors = requestor if isinstance(requestor, list) else [requestor] if requestor else []
        priority = body.get("Priority", 0)
        ticket = world.open_ticket(
            user,
            qid,
            str(body.get("Subject") or ""),
            body.get("Content"),
            str(body.get("ContentType") or "text/plain"),
            [str(r) for r in requestors],
            int(priority) if str(priority).isdigit() else 0,
        )
        return JSONResponse(
            ref(request, "ticket", ticket.id),
            status_code=201,
            headers={"Location": f"{API}/ticket/{ticket.id}"},
        )

    def ticket_or_404(ticket_id: str) -> SimTicket | JSONResponse:
        found = world.tickets.get(int(ticket_id)) if ticket_id.isdigit() else None
        return found if found is not None else message(404, "Not Found")

    @api.get("/ticket/{ticket_id}")
    async def get_ticket(ticket_id: str, request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        return JSONResponse(ticket_json(request, found), headers={"ETag": '"0"'})

    @api.put("/ticket/{ticket_id}")
    async def update_ticket(ticket_id: str, request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        body, problem = await body_of(request)
        if problem:
            return message(400, problem)
        messages: list[str] = []
        if "Priority" in body:
            new = int(body["Priority"]) if str(body["Priority"]).isdigit() else None
            if new is None:
                messages.append(f"Ticket {found.id}: Priority: invalid value")
            elif new != found.priority:

                def name(p: int) -> str:
                    return next(n for floor, n in PRIORITY_BUCKETS if p >= floor)

                old = found.priority
                found.priority = new
                world.record(found, "Set", user, field="Priority", old=str(old), new=str(new))
                messages.append(
                    f"Ticket {found.id}: Priority changed from '{name(old)}' to '{name(new)}'"
                )
        if "Status" in body:
            status = str(body["Status"])
            if status not in STATUSES:
                messages.append(
                    f"Ticket {found.id}: Status '{status}' isn't a valid status for this ticket."
                )
            elif status != found.status:
                messages.append(world.set_status(found, status, user))
        if "Subject" in body and str(body["Subject"]) != found.subject:
            old_subject, found.subject = found.subject, str(body["Subject"])
            world.record(found, "Set", user, field="Subject", old=old_subject, new=found.subject)
            messages.append(
                f"Ticket {found.id}: Subject changed from '{old_subject}' to '{found.subject}'"
            )
        return messages

    async def add_note(ticket_id: str, request: Request, kind: str) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        body, problem = await body_of(request)
        if problem:
            return message(400, problem)
        content = body.get("Content")
        if not isinstance(content, str) or not content:
            return message(400, "Content is required")  # RT: nothing recorded
        content_type = str(body.get("ContentType") or "text/plain")
        txn = world.note(found, kind, user, content, content_type)
        said = "Correspondence added" if kind == "Correspond" else "Comments added"
        return JSONResponse(
            [said], status_code=201, headers={"Location": f"{API}/transaction/{txn.id}"}
        )

    @api.post("/ticket/{ticket_id}/correspond")
    async def correspond(ticket_id: str, request: Request) -> Any:
        return await add_note(ticket_id, request, "Correspond")

    @api.post("/ticket/{ticket_id}/comment")
    async def comment(ticket_id: str, request: Request) -> Any:
        return await add_note(ticket_id, request, "Comment")

    @api.get("/ticket/{ticket_id}/attachments")
    async def attachments(ticket_id: str, request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        mine = {t.id for t in world.txns if t.ticket == found.id}
        rows = [a for a in world.attachments if a.txn in mine]
        return page_of(
            request,
            "attachment",
            rows,
            attachment_value,
            lambda a: a.id,
            {"id": lambda a: a.id},
            counted=False,
        )

    @api.get("/ticket/{ticket_id}/history")
    async def history(ticket_id: str, request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        found = ticket_or_404(ticket_id)
        if isinstance(found, JSONResponse):
            return found
        rows = [t for t in world.txns if t.ticket == found.id]
        return page_of(
            request,
            "transaction",
            rows,
            lambda t, n: txn_value(request, t, n),
            lambda t: t.id,
            {"id": lambda t: t.id},
            counted=False,
        )

    ticket_fields = frozenset(
        {
            "id",
            "Queue",
            "Subject",
            "Status",
            "LastUpdated",
            "Created",
            "Priority",
            "Owner",
            "Requestor",
        }
    )

    @api.get("/tickets")
    async def search_tickets(request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        query = request.query_params.get("query")
        if not query:
            return message(400, "Query parameter required")
        try:
            tree = parse_query(query, ticket_fields)
        except TicketSqlError as exc:
            return message(400, f"{exc} at /usr/share/request-tracker5/lib/RT/Tickets.pm.\n")

        def lookup(t: SimTicket) -> Callable[[str], Any]:
            def get(name: str) -> Any:
                values: dict[str, Any] = {
                    "id": t.id,
                    "queue": world.queues.get(t.queue, ""),
                    "subject": t.subject,
                    "status": t.status,
                    "lastupdated": t.updated,
                    "created": t.created,
                    "priority": t.priority,
                    "owner": t.owner,
                    "requestor": " ".join(t.requestors),
                }
                return values[name.casefold()]

            return get

        rows = [t for t in world.tickets.values() if t.status != "deleted"]
        rows = [t for t in rows if evaluate(tree, lookup(t))]

        def ticket_value(t: SimTicket, name: str) -> Any:
            full = ticket_json(request, t)
            return full.get(name)

        return page_of(
            request,
            "ticket",
            rows,
            ticket_value,
            lambda t: t.id,
            {
                "id": lambda t: t.id,
                "lastupdated": lambda t: t.updated,
                "created": lambda t: t.created,
            },
            counted=True,
        )

    txn_fields = frozenset(
        {
            "id",
            "ObjectType",
            "ObjectId",
            "Type",
            "Created",
            "Creator",
            "Field",
            "OldValue",
            "NewValue",
        }
    )

    @api.get("/transactions")
    async def search_transactions(request: Request) -> Any:
        user = user_of(request)
        if isinstance(user, Response):
            return user
        query = request.query_params.get("query")
        if not query:
            return message(400, "Query parameter required")
        try:
            tree = parse_query(query, txn_fields)
        except TicketSqlError as exc:
            return message(400, f"{exc} at /usr/share/request-tracker5/lib/RT/Transactions.pm.\n")

        def lookup(t: Txn) -> Callable[[str], Any]:
            def get(name: str) -> Any:
                values: dict[str, Any] = {
                    "id": t.id,
                    "objecttype": "RT::Ticket",
                    "objectid": t.ticket,
                    "type": t.type,
                    "created": t.created,
                    "creator": t.creator,
                    "field": t.field,
                    "oldvalue": t.old,
                    "newvalue": t.new,
                }
                return values[name.casefold()]

            return get

        rows = [t for t in world.txns if evaluate(tree, lookup(t))]
        return page_of(
            request,
            "transaction",
            rows,
            lambda t, n: txn_value(request, t, n),
            lambda t: t.id,
            {"id": lambda t: t.id, "created": lambda t: t.created},
            counted=False,
        )

    app.include_router(api)

    @app.get(f"{WEB_PATH}/")
    async def login_page() -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE)

    @app.get(f"{WEB_PATH}/NoAuth/Login.html")
    async def login_form() -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE)

    @app.api_route(f"{WEB_PATH}/{{rest:path}}", methods=["GET", "POST", "PUT", "DELETE"])
    async def web_ui(rest: str) -> Response:
        """Any other page of the web UI: not logged in, so off to the login page."""
        return Response(status_code=302, headers={"Location": f"{WEB_PATH}/"})

    return app
