"""A stateful ConnectWise PSA (Manage) REST API simulator.

Serves the slice of ``/v4_6_release/apis/3.0`` that ticketbridge uses:
tickets (list with ``conditions``/``orderBy``/paging, count, get, create,
JSON-Patch update, put, delete), ticket notes, boards and their statuses and
types, priorities, companies, contacts, members and callbacks (webhooks),
with ConnectWise's auth, media type, error bodies, ``Link`` paging headers
and HMAC-signed callback deliveries.

Extras that the real product does not have live under ``/_sandbox`` (state
dump, fault injection, request log, webhook switches, the callback signing
key), plus one request header, ``X-Sandbox-Member: <identifier>``, which makes
an API call act as that member instead of the API member (to play a
technician in demos and tests).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketbridge.sandbox._faults import (
    IGNORED_FIELDS_SCOPE_KEY,
    FaultPlan,
    OutboundDispatcher,
    RequestLog,
    SandboxMiddleware,
    admin_router,
)

__all__ = [
    "API_MEMBER_IDENTIFIER",
    "CW_MEDIA_TYPE",
    "CW_PREFIX",
    "CWError",
    "ConnectWiseState",
    "create_app",
]

CW_PREFIX = "/v4_6_release/apis/3.0"
CW_MEDIA_TYPE = "application/vnd.connectwise.com+json; version=2025.1"
API_MEMBER_IDENTIFIER = "TicketBridgeAPI"

Json = dict[str, Any]
FieldType = Literal["int", "float", "str", "datetime", "bool"]

_DEFAULT_PAGE_SIZE = 25
_MAX_PAGE_SIZE = 1000
_SUMMARY_MAX = 100
_LEVELS = ("Low", "Medium", "High")


class _NotesByTicket(dict[int, Json]):
    """The notes by id, also indexed by ``ticketId`` so reading one ticket's notes does not
    scan every stored note.  Iterating a ticket's bucket gives its notes in the order of
    this dict (insertion order; replacing a note keeps its place in both)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_ticket: dict[int, dict[int, Json]] = {}

    def __setitem__(self, key: int, value: Json) -> None:
        old = self.get(key)
        if old is not None and old["ticketId"] != value["ticketId"]:
            self._unindex(key, old)
        super().__setitem__(key, value)
        self.by_ticket.setdefault(value["ticketId"], {})[key] = value

    def __delitem__(self, key: int) -> None:
        self._unindex(key, self[key])
        super().__delitem__(key)

    def _unindex(self, key: int, note: Json) -> None:
        bucket = self.by_ticket.get(note["ticketId"])
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self.by_ticket[note["ticketId"]]

    def pop(self, key: int, *default: Any) -> Any:
        if key in self:
            self._unindex(key, self[key])
        return super().pop(key, *default)

    def clear(self) -> None:
        super().clear()
        self.by_ticket.clear()

    def of_ticket(self, ticket_id: int) -> list[Json]:
        return list(self.by_ticket.get(ticket_id, {}).values())


#: Where the API lives and how to log in, printed by ``ticketbridge sandbox``.
LOGIN_HINT = " (API at /v4_6_release/apis/3.0; msp+pub / priv, clientId 00000000-0000-0000-0000-000000000000)"


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_timestamp(dt: datetime) -> str:
    """ConnectWise's wire format: ISO-8601 UTC, second resolution, ``Z``."""
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return _utc(datetime.fromisoformat(value))


def _system_clock() -> datetime:
    return datetime.now(UTC)


# -- errors ---------------------------------------------------------------------


class CWError(Exception):
    """An API error with ConnectWise's body ``{"code", "message", "errors"?}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[Json] | None = None,
        *,
        body: Json | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self._body = body

    def body(self) -> Json:
        if self._body is not None:
            return self._body
        out: Json = {"code": self.code, "message": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out


def _field_error(resource: str, field: str, message: str, code: str = "InvalidField") -> Json:
    return {"code": code, "message": message, "resource": resource, "field": field}


def _invalid(resource: str, errors: list[Json]) -> CWError:
    return CWError(400, "InvalidObject", f"{resource} object is invalid", errors)


def _not_found(what: str, ident: object) -> CWError:
    return CWError(404, "NotFound", f"{what} {ident} not found")


def _bad_request(message: str) -> CWError:
    return CWError(400, "InvalidObject", message)


# -- conditions, orderBy, fields -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    path: tuple[str, ...]
    type: FieldType


def _registry(
    spec: Mapping[str, FieldType], aliases: Mapping[str, str] | None = None
) -> dict[str, _Field]:
    out = {name.lower(): _Field(tuple(name.split("/")), kind) for name, kind in spec.items()}
    for alias, target in (aliases or {}).items():
        out[alias.lower()] = out[target.lower()]
    return out


def _ref_fields(name: str, *, identifier: bool = False) -> dict[str, FieldType]:
    spec: dict[str, FieldType] = {f"{name}/id": "int", f"{name}/name": "str"}
    if identifier:
        spec[f"{name}/identifier"] = "str"
    return spec


_INFO_FIELDS: dict[str, FieldType] = {
    "_info/lastUpdated": "datetime",
    "_info/updatedBy": "str",
    "_info/dateEntered": "datetime",
    "_info/enteredBy": "str",
}

TICKET_FIELDS = _registry(
    {
        "id": "int",
        "summary": "str",
        "recordType": "str",
        **_ref_fields("board"),
        **_ref_fields("status"),
        **_ref_fields("company", identifier=True),
        **_ref_fields("contact"),
        **_ref_fields("type"),
        **_ref_fields("subType"),
        **_ref_fields("item"),
        **_ref_fields("team"),
        **_ref_fields("owner", identifier=True),
        **_ref_fields("priority"),
        **_ref_fields("source"),
        **_ref_fields("location"),
        **_ref_fields("department", identifier=True),
        "priority/sort": "int",
        "contactName": "str",
        "contactEmailAddress": "str",
        "contactPhoneNumber": "str",
        "severity": "str",
        "impact": "str",
        "externalXRef": "str",
        "poNumber": "str",
        "closedFlag": "bool",
        "closedDate": "datetime",
        "closedBy": "str",
        "customerUpdatedFlag": "bool",
        "approved": "bool",
        "parentTicketId": "int",
        "hasChildTicket": "bool",
        "requiredDate": "datetime",
        "budgetHours": "float",
        "mobileGuid": "str",
        **_INFO_FIELDS,
    },
    {
        "lastUpdated": "_info/lastUpdated",
        "dateEntered": "_info/dateEntered",
        "updatedBy": "_info/updatedBy",
        "enteredBy": "_info/enteredBy",
    },
)

NOTE_FIELDS = _registry(
    {
        "id": "int",
        "ticketId": "int",
        "text": "str",
        "detailDescriptionFlag": "bool",
        "internalAnalysisFlag": "bool",
        "resolutionFlag": "bool",
        "issueFlag": "bool",
        "customerUpdatedFlag": "bool",
        "processNotifications": "bool",
        "internalFlag": "bool",
        "externalFlag": "bool",
        "dateCreated": "datetime",
        "createdBy": "str",
        **_ref_fields("member", identifier=True),
        **_ref_fields("contact"),
        "_info/lastUpdated": "datetime",
        "_info/updatedBy": "str",
    },
    {"lastUpdated": "_info/lastUpdated", "updatedBy": "_info/updatedBy"},
)

TIME_ENTRY_FIELDS = _registry(
    {
        "id": "int",
        "chargeToId": "int",
        "chargeToType": "str",
        **_ref_fields("member", identifier=True),
        **_ref_fields("company", identifier=True),
        **_ref_fields("ticket"),
        "timeStart": "datetime",
        "timeEnd": "datetime",
        "actualHours": "float",
        "notes": "str",
        "internalNotes": "str",
        "addToDetailDescriptionFlag": "bool",
        "addToInternalAnalysisFlag": "bool",
        "addToResolutionFlag": "bool",
        "dateEntered": "datetime",
        **_INFO_FIELDS,
    },
    {"lastUpdated": "_info/lastUpdated", "enteredBy": "_info/enteredBy"},
)

#: ``/service/tickets/{id}/allNotes``: notes and time entries as ``ServiceTicketNote``.
ALL_NOTES_FIELDS = _registry(
    {
        "id": "int",
        "noteType": "str",
        **_ref_fields("ticket"),
        "text": "str",
        "detailDescriptionFlag": "bool",
        "internalAnalysisFlag": "bool",
        "resolutionFlag": "bool",
        "timeStart": "datetime",
        "timeEnd": "datetime",
        "originalAuthor": "str",
        **_ref_fields("member", identifier=True),
        **_ref_fields("contact"),
        **_INFO_FIELDS,
    },
    {"lastUpdated": "_info/lastUpdated", "dateEntered": "_info/dateEntered"},
)

#: Where time can be charged; ticketbridge reads the ticket ones.
CHARGE_TO_TYPES = ("ServiceTicket", "ProjectTicket", "ChargeCode", "Activity")

BOARD_FIELDS = _registry(
    {
        "id": "int",
        "name": "str",
        "inactiveFlag": "bool",
        **_ref_fields("location"),
        **_ref_fields("department", identifier=True),
    }
)

TEAM_FIELDS = _registry(
    {
        "id": "int",
        "name": "str",
        **_ref_fields("board"),
        "defaultFlag": "bool",
    }
)

STATUS_FIELDS = _registry(
    {
        "id": "int",
        "name": "str",
        **_ref_fields("board"),
        "sortOrder": "int",
        "displayOnBoard": "bool",
        "inactive": "bool",
        "closedStatus": "bool",
        "timeEntryNotAllowed": "bool",
        "defaultFlag": "bool",
        "escalationStatus": "str",
        "customerPortalDescription": "str",
        "customerPortalFlag": "bool",
    }
)

TYPE_FIELDS = _registry(
    {"id": "int", "name": "str", "category": "str", "defaultFlag": "bool", **_ref_fields("board")}
)

PRIORITY_FIELDS = _registry(
    {
        "id": "int",
        "name": "str",
        "color": "str",
        "sortOrder": "int",
        "defaultFlag": "bool",
        "level": "str",
    }
)

COMPANY_FIELDS = _registry(
    {
        "id": "int",
        "identifier": "str",
        "name": "str",
        **_ref_fields("status"),
        "phoneNumber": "str",
        "website": "str",
        "deletedFlag": "bool",
        **_INFO_FIELDS,
    },
    {"lastUpdated": "_info/lastUpdated"},
)

CONTACT_FIELDS = _registry(
    {
        "id": "int",
        "firstName": "str",
        "lastName": "str",
        **_ref_fields("company", identifier=True),
        "inactiveFlag": "bool",
        "title": "str",
        **_INFO_FIELDS,
    },
    {"lastUpdated": "_info/lastUpdated"},
)

MEMBER_FIELDS = _registry(
    {
        "id": "int",
        "identifier": "str",
        "firstName": "str",
        "lastName": "str",
        "primaryEmail": "str",
        "inactiveFlag": "bool",
        "title": "str",
    }
)

CALLBACK_FIELDS = _registry(
    {
        "id": "int",
        "description": "str",
        "url": "str",
        "objectId": "int",
        "type": "str",
        "level": "str",
        "memberId": "int",
        "payloadVersion": "str",
        "inactiveFlag": "bool",
        "isSoapCallbackFlag": "bool",
        "isSelfSuppressedFlag": "bool",
        "connectWiseID": "str",
    }
)

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)|
        (?P<op><=|>=|!=|<>|=|<|>)|
        (?P<dt>\[[^\]]*\])|
        (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|
        (?P<num>-?\d+(?:\.\d+)?(?![\w/]))|
        (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "like", "contains", "in", "true", "false", "null"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


class _Null:
    """The ``null`` literal."""


_NULL = _Null()


def _conditions_error(detail: str) -> CWError:
    return CWError(400, "InvalidObject", f"conditions is invalid: {detail}")


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.lastgroup is None:
            raise _conditions_error(
                f"unexpected character at position {pos}: {text[pos : pos + 10]!r}"
            )
        tokens.append(_Tok(m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        pos = m.end()
    return tokens


def _get_path(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _normalize(value: Any, kind: FieldType) -> Any:
    """The comparable form of a stored value (None stays None)."""
    if value is None:
        return None
    if kind == "datetime":
        try:
            return parse_timestamp(str(value))
        except ValueError:
            return None
    if kind == "str":
        return str(value).casefold()
    return value


class _ConditionParser:
    def __init__(self, text: str, fields: Mapping[str, _Field]) -> None:
        self.tokens = _tokenize(text)
        self.fields = fields
        self.i = 0

    def parse(self) -> Predicate:
        if not self.tokens:
            return lambda _record: True
        pred = self._or()
        if self.i < len(self.tokens):
            tok = self.tokens[self.i]
            raise _conditions_error(f"unexpected {tok.text!r} at position {tok.pos}")
        return pred

    def _peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, what: str) -> _Tok:
        tok = self._peek()
        if tok is None:
            raise _conditions_error(f"expected {what} but the conditions ended")
        self.i += 1
        return tok

    def _is_word(self, tok: _Tok | None, *words: str) -> bool:
        return tok is not None and tok.kind == "word" and tok.text.lower() in words

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._is_word(self._peek(), "or"):
            self.i += 1
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda record: any(p(record) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._atom()]
        while self._is_word(self._peek(), "and"):
            self.i += 1
            parts.append(self._atom())
        if len(parts) == 1:
            return parts[0]
        return lambda record: all(p(record) for p in parts)

    def _atom(self) -> Predicate:
        tok = self._peek()
        if tok is not None and tok.kind == "lparen":
            self.i += 1
            pred = self._or()
            closing = self._next("')'")
            if closing.kind != "rparen":
                raise _conditions_error(f"expected ')' at position {closing.pos}")
            return pred
        return self._comparison()

    def _literal(self) -> Any:
        tok = self._next("a value")
        if tok.kind == "dt":
            inner = tok.text[1:-1].strip()
            try:
                return parse_timestamp(inner)
            except ValueError:
                raise _conditions_error(f"bad date {tok.text!r}") from None
        if tok.kind == "str":
            body = tok.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if tok.kind == "num":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        if tok.kind == "word" and tok.text.lower() == "null":
            return _NULL
        raise _conditions_error(f"expected a value at position {tok.pos}, got {tok.text!r}")

    def _comparison(self) -> Predicate:
        tok = self._next("a field name")
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise _conditions_error(
                f"expected a field name at position {tok.pos}, got {tok.text!r}"
            )
        field = self.fields.get(tok.text.lower())
        if field is None:
            raise _conditions_error(f"unknown field {tok.text!r}")
        op_tok = self._next("an operator")
        negate = False
        if self._is_word(op_tok, "not"):
            negate = True
            op_tok = self._next("like, contains or in")
            if not self._is_word(op_tok, "like", "contains", "in"):
                raise _conditions_error(
                    f"expected like, contains or in after 'not' at {op_tok.pos}"
                )
        if op_tok.kind == "op":
            op = "!=" if op_tok.text == "<>" else op_tok.text
        elif self._is_word(op_tok, "like", "contains", "in"):
            op = op_tok.text.lower()
        else:
            raise _conditions_error(f"expected an operator at position {op_tok.pos}")
        if op == "in":
            opening = self._next("'('")
            if opening.kind != "lparen":
                raise _conditions_error(f"expected '(' after 'in' at position {opening.pos}")
            values = [self._literal()]
            while True:
                sep = self._next("',' or ')'")
                if sep.kind == "rparen":
                    break
                if sep.kind != "comma":
                    raise _conditions_error(f"expected ',' or ')' at position {sep.pos}")
                values.append(self._literal())
            for value in values:
                self._check_type(tok.text, field, op, value)
            return self._in_predicate(field, values, negate)
        value = self._literal()
        self._check_type(tok.text, field, op, value)
        return self._predicate(field, op, value, negate)

    def _check_type(self, name: str, field: _Field, op: str, value: Any) -> None:
        if value is _NULL:
            if op not in ("=", "!="):
                raise _conditions_error(f"null can only be compared with = or != ({name})")
            return
        kind = field.type
        if op in ("like", "contains") and kind != "str":
            raise _conditions_error(f"{op} needs a string field, {name} is not one")
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str | int | float) and not isinstance(value, bool),
            "datetime": isinstance(value, datetime),
            "bool": isinstance(value, bool),
        }[kind]
        if not ok:
            hint = " (dates go in square brackets)" if kind == "datetime" else ""
            raise _conditions_error(f"cannot compare {name} with {value!r}{hint}")
        if kind == "bool" and op not in ("=", "!="):
            raise _conditions_error(f"{name} is a boolean; use = or !=")

    @staticmethod
    def _literal_value(value: Any, kind: FieldType) -> Any:
        if kind == "str":
            return str(value).casefold()
        return value

    def _predicate(self, field: _Field, op: str, literal: Any, negate: bool) -> Predicate:
        kind = field.type
        path = field.path
        if literal is _NULL:
            want_null = op == "="
            return lambda record: (_get_path(record, path) is None) == want_null
        lit = self._literal_value(literal, kind)
        if op == "like":
            pattern = re.escape(str(lit)).replace(r"\*", ".*").replace("%", ".*")
            regex = re.compile(pattern, re.DOTALL)

            def test(v: Any) -> bool:
                return regex.fullmatch(v) is not None

        elif op == "contains":

            def test(v: Any) -> bool:
                return str(lit) in v

        else:
            compare: dict[str, Callable[[Any, Any], bool]] = {
                "=": lambda a, b: bool(a == b),
                "!=": lambda a, b: bool(a != b),
                "<": lambda a, b: bool(a < b),
                "<=": lambda a, b: bool(a <= b),
                ">": lambda a, b: bool(a > b),
                ">=": lambda a, b: bool(a >= b),
            }
            fn = compare[op]

            def test(v: Any) -> bool:
                return fn(v, lit)

        def pred(record: Mapping[str, Any]) -> bool:
            value = _normalize(_get_path(record, path), kind)
            if value is None:
                return False
            try:
                result = test(value)
            except TypeError:
                return False
            return not result if negate else result

        return pred

    def _in_predicate(self, field: _Field, values: list[Any], negate: bool) -> Predicate:
        kind = field.type
        allowed = {self._literal_value(v, kind) for v in values if v is not _NULL}
        allow_null = any(v is _NULL for v in values)

        def pred(record: Mapping[str, Any]) -> bool:
            value = _normalize(_get_path(record, field.path), kind)
            if value is None:
                return allow_null and not negate
            result = value in allowed
            return not result if negate else result

        return pred


def parse_conditions(text: str | None, fields: Mapping[str, _Field]) -> Predicate:
    """Compile ConnectWise ``conditions`` text into a predicate; raises CWError(400)."""
    return _ConditionParser(text or "", fields).parse()


def _order_keys(order_by: str | None, fields: Mapping[str, _Field]) -> list[tuple[_Field, bool]]:
    keys: list[tuple[_Field, bool]] = []
    for part in (order_by or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise _bad_request(f"orderBy is invalid: {part.strip()!r}")
        field = fields.get(words[0].lower())
        if field is None:
            raise _bad_request(f"orderBy is invalid: unknown field {words[0]!r}")
        keys.append((field, len(words) == 2 and words[1].lower() == "desc"))
    return keys


def _sort(items: list[Json], keys: list[tuple[_Field, bool]]) -> list[Json]:
    out = list(items)
    for field, desc in reversed(keys):

        def key(record: Json, field: _Field = field) -> tuple[int, Any]:
            value = _normalize(_get_path(record, field.path), field.type)
            return (0, 0) if value is None else (1, value)

        out.sort(key=key, reverse=desc)
    return out


def _project(record: Json, fields: str | None) -> Json:
    """Apply the ``fields`` query parameter (``a,b/c,_info/lastUpdated``)."""
    if not fields:
        return record
    out: Json = {}
    for raw in fields.split(","):
        path = [p for p in raw.strip().split("/") if p]
        if not path:
            continue
        src: Any = record
        for part in path:
            src = src.get(part) if isinstance(src, Mapping) else None
        if src is None:
            continue
        dst = out
        for part in path[:-1]:
            dst = dst.setdefault(part, {})
        dst[path[-1]] = copy.deepcopy(src)
    return out


# -- state ----------------------------------------------------------------------


def _person_name(first: str, last: str) -> str:
    return f"{first} {last}".strip()


class ConnectWiseState:
    """Everything the simulator knows, behind one lock.

    Use the methods (not the dicts) to change data from tests or a demo: they
    keep ``_info`` timestamps and callbacks right.  ``member`` arguments are
    member identifiers; ``None`` means the API member.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
        seed_data: bool = True,
        company_id: str = "msp",
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], datetime] = clock or _system_clock
        self.rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self.company_id = company_id
        #: Base URL (scheme://host[:port]) the simulator is reachable at; set by
        #: SandboxServer, else taken from the latest request.
        self.public_url: str | None = None
        self._seen_url = "http://127.0.0.1"
        self.boards: dict[int, Json] = {}
        self.statuses: dict[int, Json] = {}
        self.types: dict[int, Json] = {}
        self.teams: dict[int, Json] = {}
        self.priorities: dict[int, Json] = {}
        self.companies: dict[int, Json] = {}
        self.contacts: dict[int, Json] = {}
        self.members: dict[int, Json] = {}
        self.custom_fields: list[Json] = []
        self.tickets: dict[int, Json] = {}
        self.notes: _NotesByTicket = _NotesByTicket()
        #: (note id, wall-clock ``time.time()``) of each note added, in order, for benchmarks
        #: measuring from the moment a note was created.
        self.notes_stored_at: list[tuple[int, float]] = []
        #: time entries; their ids are their own series, apart from note ids
        self.time_entries: dict[int, Json] = {}
        self.callbacks: dict[int, Json] = {}
        self.signing_keys: dict[str, str] = {}
        #: Requests to the signing-key endpoint (found or not), so tests can count fetches.
        self.key_fetches = 0
        self.current_key_id = ""
        self.partner_id = self._hex(24)
        self.product_instance_id = self._hex(24)
        self.dispatcher = OutboundDispatcher(timeout=5.0, seed=seed)
        self._ids: dict[str, int] = {}
        #: API path prefix -> security module the API member's role lacks (see :meth:`deny`).
        self.denied: dict[str, str] = {}
        self.rotate_signing_key()
        if seed_data:
            self.seed_default()

    def deny(self, path_prefix: str, module: str) -> None:
        """Make requests under ``path_prefix`` (e.g. ``/system/members``) fail with 403, as
        when the API member's security role has no Inquire level on ``module`` (e.g.
        "Member Maintenance")."""
        with self.lock:
            self.denied[path_prefix] = module

    def denied_module(self, path: str) -> str | None:
        """The module a request path needs that the API member's role lacks, if any."""
        with self.lock:
            for prefix, module in self.denied.items():
                if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                    return module
        return None

    # -- small helpers ------------------------------------------------------
    def _hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _next_id(self, kind: str, start: int = 1) -> int:
        value = self._ids.get(kind, start)
        self._ids[kind] = value + 1
        return value

    def now(self) -> str:
        return format_timestamp(self.clock())

    @property
    def base_url(self) -> str:
        return (self.public_url or self._seen_url).rstrip("/")

    def note_request_url(self, base_url: str) -> None:
        self._seen_url = base_url.rstrip("/")

    def api_member(self) -> Json:
        return self.member_by_identifier(API_MEMBER_IDENTIFIER)

    def member_by_identifier(self, identifier: str) -> Json:
        with self.lock:
            for member in self.members.values():
                if member["identifier"].casefold() == identifier.casefold():
                    return member
        raise CWError(400, "InvalidObject", f"member {identifier!r} not found")

    # -- seed data ------------------------------------------------------------
    def seed_default(self) -> None:
        """Boards, statuses, priorities, companies, contacts, members, custom fields."""
        with self.lock:
            self.add_member("jsmith", "John", "Smith", "jsmith@msp.example")
            self.add_member("adavis", "Alex", "Davis", "adavis@msp.example")
            self.add_member(
                API_MEMBER_IDENTIFIER, "TicketBridge", "API", "ticketbridge@msp.example"
            )
            self.add_board(
                "Vendor Escalations",
                [
                    ("New", False),
                    ("In Progress", False),
                    ("Waiting on Vendor", False),
                    ("Vendor Resolved - Verify with Client", False),
                    ("Closed", True),
                ],
                types=["Vendor Incident", "Vendor Request"],
            )
            self.add_board(
                "Service Desk",
                [
                    ("New", False),
                    ("In Progress", False),
                    ("Waiting on Client", False),
                    ("Closed", True),
                ],
                types=["Incident", "Service Request"],
                default=True,
            )
            for board in list(self.boards.values()):
                names = (
                    ("Tier 1", "Tier 2", "Tier 3", "Onsite", "Management")
                    if board["name"] == "Service Desk"
                    else ("Vendor Management",)
                )
                for n, team in enumerate(names):
                    self.add_team(board["id"], team, default=n == 0)
            self.add_priority("Priority 1 - Emergency Response", "Red", 1)
            self.add_priority("Priority 2 - Quick Response", "Orange", 2)
            self.add_priority("Priority 3 - Normal Response", "Green", 3, default=True)
            self.add_priority("Priority 4 - Low", "Blue", 4)
            self.add_company("ACME", "Acme Dental Group", "555-0100")
            self.add_company("GLOBEX", "Globex Logistics", "555-0200")
            self.add_contact(
                "ACME", "Dana", "Whitfield", "dana.whitfield@acmedental.example", "555-0101"
            )
            self.add_contact("ACME", "Priya", "Raman", "priya.raman@acmedental.example", "555-0102")
            self.add_contact("GLOBEX", "Marcus", "Lee", "marcus.lee@globex.example", "555-0201")
            self.add_custom_field("Vendor Ticket #")
            self.add_custom_field("Vendor Name")

    def add_member(self, identifier: str, first: str, last: str, email: str) -> Json:
        with self.lock:
            member_id = self._next_id("member")
            member = {
                "id": member_id,
                "identifier": identifier,
                "firstName": first,
                "lastName": last,
                "primaryEmail": email,
                "inactiveFlag": False,
                "_info": {"lastUpdated": self.now(), "updatedBy": "Admin"},
            }
            self.members[member_id] = member
            return member

    def add_board(
        self,
        name: str,
        statuses: Iterable[tuple[str, bool]],
        *,
        types: Iterable[str] = (),
        default: bool = False,
    ) -> Json:
        """A board; the first status is its default, ``(name, closed)`` pairs."""
        with self.lock:
            board_id = self._next_id("board")
            board = {
                "id": board_id,
                "name": name,
                "location": {"id": 1, "name": "Main"},
                "department": {"id": 1, "identifier": "Services", "name": "Services"},
                "inactiveFlag": False,
                "defaultBoardFlag": default,
                "_info": {"lastUpdated": self.now(), "updatedBy": "Admin"},
            }
            self.boards[board_id] = board
            for n, (status_name, closed) in enumerate(statuses):
                self.add_status(board_id, status_name, closed=closed, default=n == 0)
            for n, type_name in enumerate(types):
                type_id = self._next_id("type")
                self.types[type_id] = {
                    "id": type_id,
                    "name": type_name,
                    "category": "Reactive",
                    "defaultFlag": n == 0,
                    "inactiveFlag": False,
                    "board": {"id": board_id, "name": name},
                }
            return board

    def add_team(self, board_id: int, name: str, *, default: bool = False) -> Json:
        """A service team of a board (``/service/boards/{id}/teams``)."""
        with self.lock:
            board = self.boards[board_id]
            team_id = self._next_id("team")
            team = {
                "id": team_id,
                "name": name,
                "board": {"id": board_id, "name": board["name"]},
                "defaultFlag": default,
                "_info": {"lastUpdated": self.now(), "updatedBy": "Admin"},
            }
            self.teams[team_id] = team
            return team

    def board_teams(self, board_id: int) -> list[Json]:
        with self.lock:
            return [t for t in self.teams.values() if t["board"]["id"] == board_id]

    def add_status(
        self, board_id: int, name: str, *, closed: bool = False, default: bool = False
    ) -> Json:
        with self.lock:
            board = self.boards[board_id]
            status_id = self._next_id("status")
            sort = sum(1 for s in self.statuses.values() if s["board"]["id"] == board_id)
            status = {
                "id": status_id,
                "name": name,
                "board": {"id": board_id, "name": board["name"]},
                "sortOrder": sort,
                "displayOnBoard": True,
                "inactive": False,
                "closedStatus": closed,
                "timeEntryNotAllowed": closed,
                "defaultFlag": default,
                "escalationStatus": "Resolved"
                if closed
                else "NotResponded"
                if default
                else "Responded",
                "customerPortalDescription": name,
                "customerPortalFlag": False,
                "_info": {"lastUpdated": self.now(), "updatedBy": "Admin"},
            }
            self.statuses[status_id] = status
            return status

    def add_priority(self, name: str, color: str, sort: int, *, default: bool = False) -> Json:
        with self.lock:
            priority_id = self._next_id("priority")
            priority = {
                "id": priority_id,
                "name": name,
                "color": color,
                "sortOrder": sort,
                "defaultFlag": default,
                "level": f"Priority {sort}",
                "_info": {"lastUpdated": self.now(), "updatedBy": "Admin"},
            }
            self.priorities[priority_id] = priority
            return priority

    def add_company(self, identifier: str, name: str, phone: str = "") -> Json:
        with self.lock:
            company_id = self._next_id("company")
            now = self.now()
            company = {
                "id": company_id,
                "identifier": identifier,
                "name": name,
                "status": {"id": 1, "name": "Active"},
                "phoneNumber": phone,
                "website": "",
                "deletedFlag": False,
                "types": [{"id": 1, "name": "Client"}],
                "mobileGuid": self._uuid(),
                "_info": {
                    "lastUpdated": now,
                    "updatedBy": "Admin",
                    "dateEntered": now,
                    "enteredBy": "Admin",
                },
            }
            self.companies[company_id] = company
            return company

    def add_contact(
        self, company_identifier: str, first: str, last: str, email: str, phone: str
    ) -> Json:
        with self.lock:
            company = self._company_by(identifier=company_identifier)
            contact_id = self._next_id("contact")
            now = self.now()
            contact = {
                "id": contact_id,
                "firstName": first,
                "lastName": last,
                "company": self._company_ref(company),
                "inactiveFlag": False,
                "communicationItems": [
                    {
                        "id": contact_id * 10 + 1,
                        "type": {"id": 1, "name": "Email"},
                        "value": email,
                        "defaultFlag": True,
                        "communicationType": "Email",
                    },
                    {
                        "id": contact_id * 10 + 2,
                        "type": {"id": 2, "name": "Direct"},
                        "value": phone,
                        "defaultFlag": True,
                        "communicationType": "Phone",
                    },
                ],
                "_info": {
                    "lastUpdated": now,
                    "updatedBy": "Admin",
                    "dateEntered": now,
                    "enteredBy": "Admin",
                },
            }
            self.contacts[contact_id] = contact
            return contact

    def add_custom_field(self, caption: str, *, kind: str = "Text") -> Json:
        with self.lock:
            field_id = self._next_id("customfield")
            definition = {
                "id": field_id,
                "caption": caption,
                "type": kind,
                "entryMethod": "EntryField",
                "numberOfDecimals": 0,
                "connectWiseId": self._uuid(),
            }
            self.custom_fields.append(definition)
            return definition

    def rotate_signing_key(self) -> str:
        """A new callback signing key becomes current; old ones stay fetchable."""
        with self.lock:
            key_id = self._uuid()
            self.signing_keys[key_id] = base64.b64encode(self.rng.randbytes(32)).decode()
            self.current_key_id = key_id
            return key_id

    # -- references ------------------------------------------------------------
    @staticmethod
    def _company_ref(company: Json) -> Json:
        return {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}

    @staticmethod
    def _member_ref(member: Json) -> Json:
        return {
            "id": member["id"],
            "identifier": member["identifier"],
            "name": _person_name(member["firstName"], member["lastName"]),
        }

    @staticmethod
    def _status_ref(status: Json) -> Json:
        return {"id": status["id"], "name": status["name"], "sort": status["sortOrder"]}

    @staticmethod
    def _priority_ref(priority: Json) -> Json:
        return {"id": priority["id"], "name": priority["name"], "sort": priority["sortOrder"]}

    @staticmethod
    def _contact_ref(contact: Json) -> Json:
        return {
            "id": contact["id"],
            "name": _person_name(contact["firstName"], contact["lastName"]),
        }

    def _company_by(self, *, id: int | None = None, identifier: str | None = None) -> Json:
        for company in self.companies.values():
            if id is not None and company["id"] == id:
                return company
            if identifier is not None and company["identifier"].casefold() == identifier.casefold():
                return company
        raise KeyError(id if id is not None else identifier)

    def board_statuses(self, board_id: int) -> list[Json]:
        with self.lock:
            return [s for s in self.statuses.values() if s["board"]["id"] == board_id]

    def _default_status(self, board_id: int) -> Json:
        statuses = self.board_statuses(board_id)
        for status in statuses:
            if status["defaultFlag"]:
                return status
        return statuses[0]

    def _resolve(self, field: str, value: Any, *, board_id: int | None = None) -> Json:
        """A reference value (``{"id": N}``, ``{"name": ...}``, ...) to the stored reference."""
        if not isinstance(value, Mapping) or not any(
            k in value for k in ("id", "name", "identifier")
        ):
            raise ValueError(f"{field} must be an object with id or name")
        ident = value.get("id")
        name = value.get("name")
        identifier = value.get("identifier")
        if ident is not None and (not isinstance(ident, int) or isinstance(ident, bool)):
            raise ValueError(f"{field}/id must be an integer")

        def match(record: Json, names: Iterable[str]) -> bool:
            if ident is not None:
                return bool(record["id"] == ident)
            for n in names:
                if identifier is not None and n == "identifier":
                    return (
                        str(record.get("identifier", "")).casefold() == str(identifier).casefold()
                    )
                if name is not None and n == "name":
                    return str(record.get("name", "")).casefold() == str(name).casefold()
            return False

        if field == "company":
            for company in self.companies.values():
                if match(company, ("identifier", "name")):
                    return self._company_ref(company)
        elif field == "board":
            for board in self.boards.values():
                if match(board, ("name",)):
                    return {"id": board["id"], "name": board["name"]}
        elif field == "status":
            for status in self.board_statuses(board_id or 0):
                if match(status, ("name",)):
                    return self._status_ref(status)
        elif field == "priority":
            for priority in self.priorities.values():
                if match(priority, ("name",)):
                    return self._priority_ref(priority)
        elif field == "team":
            for team in self.teams.values():
                if team["board"]["id"] == board_id and match(team, ("name",)):
                    return {"id": team["id"], "name": team["name"]}
        elif field == "type":
            for type_ in self.types.values():
                if type_["board"]["id"] == board_id and match(type_, ("name",)):
                    return {"id": type_["id"], "name": type_["name"]}
        elif field in ("owner", "member"):
            for member in self.members.values():
                named = {**member, "name": _person_name(member["firstName"], member["lastName"])}
                if match(named, ("identifier", "name")):
                    return self._member_ref(member)
        elif field == "contact":
            for contact in self.contacts.values():
                named = {**contact, "name": _person_name(contact["firstName"], contact["lastName"])}
                if match(named, ("name",)):
                    return self._contact_ref(contact)
        else:
            ref: Json = {}
            for key in ("id", "identifier", "name"):
                if value.get(key) is not None:
                    ref[key] = value[key]
            return ref
        raise LookupError(f"{field} object is invalid")

    # -- rendering --------------------------------------------------------------
    def _href(self, path: str) -> str:
        return f"{self.base_url}{CW_PREFIX}/{path.lstrip('/')}"

    _REF_HREFS: Mapping[str, tuple[str, str]] = {
        "board": ("board_href", "service/boards/{id}"),
        "company": ("company_href", "company/companies/{id}"),
        "contact": ("contact_href", "company/contacts/{id}"),
        "type": ("type_href", "service/boards/{board}/types/{id}"),
        "owner": ("member_href", "system/members/{id}"),
        "member": ("member_href", "system/members/{id}"),
        "priority": ("priority_href", "service/priorities/{id}"),
        "status": ("status_href", "service/boards/{board}/statuses/{id}"),
    }

    def render_ticket(self, ticket: Json) -> Json:
        out = copy.deepcopy(ticket)
        board_id = ticket.get("board", {}).get("id", 0)
        for key, (info_key, template) in self._REF_HREFS.items():
            ref = out.get(key)
            if isinstance(ref, dict) and ref.get("id") is not None:
                ref["_info"] = {info_key: self._href(template.format(id=ref["id"], board=board_id))}
        tid = ticket["id"]
        out["_info"] = {
            **ticket["_info"],
            "activities_href": self._href(f"sales/activities?conditions=ticket/id={tid}"),
            "documents_href": self._href(f"system/documents?recordType=Ticket&recordId={tid}"),
            "notes_href": self._href(f"service/tickets/{tid}/notes"),
            "timeentries_href": self._href(
                f"time/entries?conditions=(chargeToType='ServiceTicket' OR chargeToType='ProjectTicket') AND chargeToId={tid}"
            ),
        }
        return out

    def render_note(self, note: Json) -> Json:
        out = copy.deepcopy(note)
        for key in ("member", "contact"):
            ref = out.get(key)
            if isinstance(ref, dict) and ref.get("id") is not None:
                info_key, template = self._REF_HREFS[key]
                ref["_info"] = {info_key: self._href(template.format(id=ref["id"], board=0))}
        ticket_id = note["ticketId"] if "ticketId" in note else note["ticket"]["id"]
        out["_info"] = {
            **note["_info"],
            "ticket_href": self._href(f"service/tickets/{ticket_id}"),
        }
        return out

    # -- tickets ------------------------------------------------------------------
    def get_ticket(self, ticket_id: int) -> Json:
        with self.lock:
            ticket = self.tickets.get(ticket_id)
            if ticket is None:
                raise _not_found("Ticket", ticket_id)
            return ticket

    def create_ticket(self, body: Mapping[str, Any], *, member: str | None = None) -> Json:
        """POST /service/tickets semantics; returns the stored ticket."""
        if not isinstance(body, Mapping):
            raise _bad_request("The request body must be a ticket object")
        with self.lock:
            actor = self.member_by_identifier(member) if member else self.api_member()
            ticket = self._build_ticket(body, existing=None, actor=actor)
            ticket_id = self._next_id("ticket", 1001)
            ticket["id"] = ticket_id
            self.tickets[ticket_id] = ticket
            for key, flag in (
                ("initialDescription", "detailDescriptionFlag"),
                ("initialInternalAnalysis", "internalAnalysisFlag"),
                ("initialResolution", "resolutionFlag"),
            ):
                text = body.get(key)
                if isinstance(text, str) and text.strip():
                    self._store_note(ticket, {"text": text, flag: True}, actor=actor, bump=False)
            self._emit("added", ticket, actor, skip=bool(body.get("skipCallback")))
            return ticket

    def put_ticket(
        self, ticket_id: int, body: Mapping[str, Any], *, member: str | None = None
    ) -> Json:
        """PUT: the body replaces the ticket's writable fields."""
        if not isinstance(body, Mapping):
            raise _bad_request("The request body must be a ticket object")
        with self.lock:
            existing = self.get_ticket(ticket_id)
            actor = self.member_by_identifier(member) if member else self.api_member()
            ticket = self._build_ticket(body, existing=existing, actor=actor)
            ticket["id"] = ticket_id
            self._touch(ticket, actor)
            self.tickets[ticket_id] = ticket
            self._emit("updated", ticket, actor, skip=bool(body.get("skipCallback")))
            return ticket

    def delete_ticket(self, ticket_id: int, *, member: str | None = None) -> None:
        with self.lock:
            ticket = self.get_ticket(ticket_id)
            actor = self.member_by_identifier(member) if member else self.api_member()
            del self.tickets[ticket_id]
            for note in self.notes.of_ticket(ticket_id):
                del self.notes[note["id"]]
            self._emit("deleted", ticket, actor)

    def _build_ticket(self, body: Mapping[str, Any], *, existing: Json | None, actor: Json) -> Json:
        errors: list[Json] = []
        now = self.now()

        def err(field: str, message: str, code: str = "InvalidField") -> None:
            errors.append(_field_error("ticket", field, message, code))

        summary = body.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            err("summary", "The summary field is required.", "MissingRequiredField")
        elif len(summary) > _SUMMARY_MAX:
            err("summary", f"summary may not exceed {_SUMMARY_MAX} characters.")

        def ref(field: str, required: bool = False, board_id: int | None = None) -> Json | None:
            value = body.get(field)
            if value is None:
                if required:
                    err(field, f"The {field} field is required.", "MissingRequiredField")
                return None
            try:
                return self._resolve(field, value, board_id=board_id)
            except (ValueError, LookupError) as exc:
                err(field, str(exc), "InvalidObject")
                return None

        company = ref("company", required=True)
        board = ref("board")
        if board is None and body.get("board") is None:
            default_board = next(
                (b for b in self.boards.values() if b.get("defaultBoardFlag")),
                next(iter(self.boards.values())),
            )
            board = {"id": default_board["id"], "name": default_board["name"]}
        board_id = board["id"] if board else None
        status = ref("status", board_id=board_id)
        if status is None and body.get("status") is None and board_id is not None:
            status = self._status_ref(self._default_status(board_id))
        priority = ref("priority")
        if priority is None and body.get("priority") is None:
            default_priority = next(
                (p for p in self.priorities.values() if p["defaultFlag"]),
                next(iter(self.priorities.values())),
            )
            priority = self._priority_ref(default_priority)
        contact = ref("contact")
        type_ = ref("type", board_id=board_id)
        owner = ref("owner")
        passthrough: Json = {}
        for field in (
            "site",
            "subType",
            "item",
            "team",
            "source",
            "serviceLocation",
            "agreement",
            "sla",
            "workRole",
            "workType",
            "opportunity",
            "currency",
            "country",
        ):
            if body.get(field) is not None:
                value = ref(field, board_id=board_id)
                if value is not None:
                    passthrough[field] = value

        for field in ("severity", "impact"):
            value = body.get(field)
            if value is not None and value not in _LEVELS:
                err(field, f"{field} must be one of {', '.join(_LEVELS)}.")
        for field in (
            "externalXRef",
            "poNumber",
            "contactName",
            "contactEmailAddress",
            "contactPhoneNumber",
        ):
            value = body.get(field)
            if value is not None and not isinstance(value, str):
                err(field, f"{field} must be a string.")
        custom_fields = self._custom_fields(body.get("customFields"), existing, err)
        if errors:
            raise _invalid("ticket", errors)
        assert company is not None
        assert board is not None
        assert status is not None
        assert priority is not None

        ticket: Json = {
            "id": existing["id"] if existing else 0,
            "summary": summary,
            "recordType": "ServiceTicket",
            "board": board,
            "status": status,
            "company": company,
        }
        if contact is not None:
            stored = self.contacts[contact["id"]]
            ticket["contact"] = contact
            ticket["contactName"] = body.get("contactName") or contact["name"]
            for item in stored["communicationItems"]:
                key = (
                    "contactEmailAddress"
                    if item["communicationType"] == "Email"
                    else "contactPhoneNumber"
                )
                ticket.setdefault(key, item["value"])
        for field in ("contactName", "contactPhoneNumber", "contactEmailAddress"):
            if isinstance(body.get(field), str):
                ticket[field] = body[field]
        if type_ is not None:
            ticket["type"] = type_
        if owner is not None:
            ticket["owner"] = owner
        ticket["priority"] = priority
        ticket.update(passthrough)
        ticket["severity"] = body.get("severity") or "Medium"
        ticket["impact"] = body.get("impact") or "Medium"
        for field in ("externalXRef", "poNumber"):
            if isinstance(body.get(field), str):
                ticket[field] = body[field]
        for field, default in (
            ("allowAllClientsPortalView", False),
            ("customerUpdatedFlag", False),
            ("automaticEmailContactFlag", False),
            ("automaticEmailResourceFlag", False),
            ("automaticEmailCcFlag", False),
        ):
            value = body.get(field)
            ticket[field] = value if isinstance(value, bool) else default
        ticket["automaticEmailCc"] = str(body.get("automaticEmailCc") or "")
        ticket["closedFlag"] = False
        ticket["approved"] = True
        for field in (
            "estimatedExpenseCost",
            "estimatedExpenseRevenue",
            "estimatedProductCost",
            "estimatedProductRevenue",
            "estimatedTimeCost",
            "estimatedTimeRevenue",
        ):
            ticket[field] = 0.0
        ticket.update(
            {
                "billingMethod": "ActualRates",
                "subBillingMethod": "ActualRates",
                "resolveMinutes": 0,
                "resPlanMinutes": 0,
                "respondMinutes": 0,
                "isInSla": True,
                "hasChildTicket": False,
                "hasMergedChildTicketFlag": False,
                "billTime": "NoDefault",
                "billExpenses": "NoDefault",
                "billProducts": "NoDefault",
                "location": {"id": 1, "name": "Main"},
                "department": {"id": 1, "identifier": "Services", "name": "Services"},
                "mobileGuid": existing["mobileGuid"] if existing else self._uuid(),
            }
        )
        if existing:
            info = dict(existing["_info"])
        else:
            ident = actor["identifier"]
            info = {"lastUpdated": now, "updatedBy": ident, "dateEntered": now, "enteredBy": ident}
        ticket["_info"] = info
        ticket.update(
            {
                "escalationLevel": 0,
                "minutesBeforeWaiting": 0,
                "respondedSkippedMinutes": 0,
                "resplanSkippedMinutes": 0,
                "respondedHours": 0.0,
                "resplanHours": 0.0,
                "resolutionHours": 0.0,
                "minutesWaiting": 0,
            }
        )
        ticket["customFields"] = custom_fields
        self._apply_closed(ticket, existing, actor)
        return ticket

    def _custom_fields(
        self, value: Any, existing: Json | None, err: Callable[[str, str], None]
    ) -> list[Json]:
        current = {cf["id"]: dict(cf) for cf in (existing or {}).get("customFields", [])}
        for definition in self.custom_fields:
            current.setdefault(definition["id"], dict(definition))
        if value is None:
            return [current[d["id"]] for d in self.custom_fields]
        if not isinstance(value, list):
            err("customFields", "customFields must be an array.")
            return list(current.values())
        given: dict[int, Any] = {}
        for entry in value:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int):
                err("customFields", "Each custom field needs an integer id.")
                continue
            if entry["id"] not in current:
                err("customFields", f"Custom field {entry['id']} does not exist.")
                continue
            given[entry["id"]] = entry.get("value")
        out: list[Json] = []
        for definition in self.custom_fields:
            entry = {k: v for k, v in current[definition["id"]].items() if k != "value"}
            new_value = given.get(definition["id"])
            if new_value is not None and new_value != "":
                entry["value"] = new_value
            out.append(entry)
        return out

    def _apply_closed(self, ticket: Json, before: Json | None, actor: Json) -> None:
        status = self.statuses.get(ticket["status"]["id"])
        closed = bool(status and status["closedStatus"])
        was_closed = bool(before and before.get("closedFlag"))
        ticket["closedFlag"] = closed
        if closed and not was_closed:
            ticket["closedDate"] = self.now()
            ticket["closedBy"] = actor["identifier"]
        elif closed and before:
            for key in ("closedDate", "closedBy"):
                if key in before:
                    ticket[key] = before[key]
        else:
            ticket.pop("closedDate", None)
            ticket.pop("closedBy", None)

    def _touch(self, ticket: Json, actor: Json) -> None:
        ticket["_info"] = {
            **ticket["_info"],
            "lastUpdated": self.now(),
            "updatedBy": actor["identifier"],
        }

    _PATCH_REFS = ("status", "priority", "board", "company", "contact", "type", "owner")
    _PATCH_OPTIONAL_REFS = ("contact", "type", "owner", "site", "team", "source", "subType", "item")
    _PATCH_STRINGS = (
        "summary",
        "externalXRef",
        "poNumber",
        "contactName",
        "contactEmailAddress",
        "contactPhoneNumber",
        "contactPhoneExtension",
        "automaticEmailCc",
        "siteName",
        "requiredDate",
    )
    _PATCH_BOOLS = (
        "closedFlag",
        "customerUpdatedFlag",
        "approved",
        "allowAllClientsPortalView",
        "automaticEmailContactFlag",
        "automaticEmailResourceFlag",
        "automaticEmailCcFlag",
    )
    _PATCH_REQUIRED = ("summary", "company", "board", "status", "priority")

    def patch_ticket(
        self,
        ticket_id: int,
        ops: Any,
        *,
        member: str | None = None,
        ignored: frozenset[str] = frozenset(),
    ) -> Json:
        """PATCH with JSON-Patch style ``[{op, path, value}]``; all ops apply or none.

        Operations on ``ignored`` paths are skipped silently (a sandbox fault: a field
        the member may not change, answered 200 with the old value).
        """
        with self.lock:
            existing = self.get_ticket(ticket_id)
            actor = self.member_by_identifier(member) if member else self.api_member()
            if not isinstance(ops, list) or not ops:
                raise _bad_request("The request body must be a non-empty array of patch operations")
            applied = [
                op
                for op in ops
                if not (isinstance(op, Mapping) and str(op.get("path", "")).strip("/") in ignored)
            ]
            if not applied:
                return existing
            ticket = copy.deepcopy(existing)
            for op in applied:
                self._apply_op(ticket, op, actor)
            self._fix_board_status(ticket)
            self._apply_closed(ticket, existing, actor)
            self._touch(ticket, actor)
            self.tickets[ticket_id] = ticket
            self._emit("updated", ticket, actor)
            return ticket

    def _apply_op(self, ticket: Json, op: Any, actor: Json) -> None:
        if not isinstance(op, Mapping):
            raise _bad_request("Each patch operation must be an object")
        kind = op.get("op")
        raw_path = op.get("path")
        if kind not in ("add", "replace", "remove"):
            raise _bad_request(f"Invalid patch op {kind!r}: use add, replace or remove")
        if not isinstance(raw_path, str) or not raw_path.strip("/"):
            raise _bad_request("Each patch operation needs a path")
        path = raw_path.removeprefix("/")
        value = op.get("value")

        def invalid(message: str, code: str = "InvalidField") -> CWError:
            return _invalid("ticket", [_field_error("ticket", path, message, code)])

        known = (
            set(self._PATCH_REFS)
            | set(self._PATCH_OPTIONAL_REFS)
            | set(self._PATCH_STRINGS)
            | set(self._PATCH_BOOLS)
            | {"severity", "impact", "customFields", "budgetHours"}
        )
        if "/" in path:
            head = path.split("/", 1)[0]
            if head in known:
                raise invalid(
                    f"Cannot patch a sub-path ({path}); replace the whole {head} object instead"
                )
            raise invalid(f"Cannot find field {path!r} on ticket")
        if path not in known:
            raise invalid(f"Cannot find field {path!r} on ticket")

        if kind == "remove":
            if path in self._PATCH_REQUIRED:
                raise invalid(f"{path} is required and cannot be removed")
            if path == "customFields":
                ticket["customFields"] = self._custom_fields([], None, lambda f, m: None)
            elif path in self._PATCH_BOOLS:
                ticket[path] = False
            else:
                ticket.pop(path, None)
            return

        if path in self._PATCH_REFS or path in self._PATCH_OPTIONAL_REFS:
            board_id = ticket["board"]["id"]
            try:
                resolved = self._resolve(path, value, board_id=board_id)
            except (ValueError, LookupError) as exc:
                raise invalid(str(exc), "InvalidObject") from None
            ticket[path] = resolved
            if path == "contact":
                stored = self.contacts[resolved["id"]]
                ticket["contactName"] = resolved["name"]
                for item in stored["communicationItems"]:
                    key = (
                        "contactEmailAddress"
                        if item["communicationType"] == "Email"
                        else "contactPhoneNumber"
                    )
                    ticket[key] = item["value"]
            return
        if path in self._PATCH_STRINGS:
            if not isinstance(value, str):
                raise invalid(f"{path} must be a string")
            if path == "summary" and (not value.strip() or len(value) > _SUMMARY_MAX):
                raise invalid(f"summary must be 1 to {_SUMMARY_MAX} characters")
            ticket[path] = value
            return
        if path in self._PATCH_BOOLS:
            if not isinstance(value, bool):
                raise invalid(f"{path} must be true or false")
            if path == "closedFlag":
                self._set_closed_flag(ticket, value)
            else:
                ticket[path] = value
            return
        if path in ("severity", "impact"):
            if value not in _LEVELS:
                raise invalid(f"{path} must be one of {', '.join(_LEVELS)}")
            ticket[path] = value
            return
        if path == "budgetHours":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise invalid("budgetHours must be a number")
            ticket[path] = float(value)
            return
        # customFields: the whole array
        errors: list[Json] = []
        fields = self._custom_fields(
            value, ticket, lambda f, m: errors.append(_field_error("ticket", f, m))
        )
        if errors:
            raise _invalid("ticket", errors)
        ticket["customFields"] = fields

    def _set_closed_flag(self, ticket: Json, closed: bool) -> None:
        statuses = self.board_statuses(ticket["board"]["id"])
        current = self.statuses.get(ticket["status"]["id"])
        if current is not None and current["closedStatus"] == closed:
            return
        if closed:
            target = next((s for s in statuses if s["closedStatus"]), None)
            if target is None:
                raise _invalid(
                    "ticket",
                    [_field_error("ticket", "closedFlag", "The board has no closed status")],
                )
        else:
            target = self._default_status(ticket["board"]["id"])
        ticket["status"] = self._status_ref(target)

    def _fix_board_status(self, ticket: Json) -> None:
        board_id = ticket["board"]["id"]
        statuses = self.board_statuses(board_id)
        if any(s["id"] == ticket["status"]["id"] for s in statuses):
            return
        same_name = next(
            (s for s in statuses if s["name"].casefold() == ticket["status"]["name"].casefold()),
            None,
        )
        ticket["status"] = self._status_ref(same_name or self._default_status(board_id))
        type_ = ticket.get("type")
        if type_ and self.types.get(type_["id"], {}).get("board", {}).get("id") != board_id:
            ticket.pop("type", None)

    def query(
        self,
        items: Iterable[Json],
        fields: Mapping[str, _Field],
        conditions: str | None,
        order_by: str | None,
    ) -> list[Json]:
        predicate = parse_conditions(conditions, fields)
        keys = _order_keys(order_by, fields)
        matched = [item for item in items if predicate(item)]
        if keys:
            return _sort(matched, keys)
        return sorted(matched, key=lambda item: int(item.get("id") or 0))

    # -- notes --------------------------------------------------------------------
    def ticket_notes(self, ticket_id: int) -> list[Json]:
        with self.lock:
            self.get_ticket(ticket_id)
            return self.notes.of_ticket(ticket_id)

    def get_note(self, ticket_id: int, note_id: int) -> Json:
        with self.lock:
            note = self.notes.get(note_id)
            if note is None or note["ticketId"] != ticket_id:
                raise _not_found("ServiceNote", note_id)
            return note

    def add_note(
        self,
        ticket_id: int,
        body: Mapping[str, Any],
        *,
        member: str | None = None,
        contact_id: int | None = None,
    ) -> Json:
        """POST /service/tickets/{id}/notes semantics (bumps the ticket, fires callbacks).

        ``contact_id`` writes the note as that contact (a customer reply).
        """
        if not isinstance(body, Mapping):
            raise _bad_request("The request body must be a note object")
        with self.lock:
            ticket = self.get_ticket(ticket_id)
            actor = self.member_by_identifier(member) if member else self.api_member()
            body = dict(body)
            if contact_id is not None:
                contact = self.contacts.get(contact_id)
                if contact is None:
                    raise _not_found("Contact", contact_id)
                body["contact"] = {"id": contact_id}
            note = self._store_note(ticket, body, actor=actor, bump=True)
            self._emit("updated", self.tickets[ticket_id], actor)
            return note

    def _store_note(
        self, ticket: Json, body: Mapping[str, Any], *, actor: Json, bump: bool
    ) -> Json:
        errors: list[Json] = []
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            errors.append(
                _field_error(
                    "serviceNote", "text", "The text field is required.", "MissingRequiredField"
                )
            )
        flags: dict[str, bool] = {}
        for flag in ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag"):
            value = body.get(flag)
            if value is not None and not isinstance(value, bool):
                errors.append(_field_error("serviceNote", flag, f"{flag} must be true or false."))
            flags[flag] = value is True
        if not errors and not any(flags.values()):
            errors.append(
                _field_error(
                    "serviceNote",
                    "detailDescriptionFlag",
                    "Set one of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag.",
                    "InvalidObject",
                )
            )
        member_ref = self._member_ref(actor)
        contact_ref: Json | None = None
        for key in ("member", "contact"):
            if body.get(key) is None:
                continue
            try:
                resolved = self._resolve(key, body[key])
            except (ValueError, LookupError) as exc:
                errors.append(_field_error("serviceNote", key, str(exc), "InvalidObject"))
                continue
            if key == "member":
                member_ref = resolved
            else:
                contact_ref = resolved
        if errors:
            raise _invalid("serviceNote", errors)
        now = self.now()
        note_id = self._next_id("note", 5001)
        note: Json = {
            "id": note_id,
            "ticketId": ticket["id"],
            "text": text,
            **flags,
            "issueFlag": body.get("issueFlag") is True,
        }
        if contact_ref is not None:
            note["contact"] = contact_ref
        else:
            note["member"] = member_ref
        note.update(
            {
                "customerUpdatedFlag": body.get("customerUpdatedFlag") is True,
                "processNotifications": body.get("processNotifications") is True,
                "dateCreated": now,
                "createdBy": actor["identifier"],
                "internalFlag": flags["internalAnalysisFlag"],
                "externalFlag": not flags["internalAnalysisFlag"]
                and (flags["detailDescriptionFlag"] or flags["resolutionFlag"]),
                "_info": {"lastUpdated": now, "updatedBy": actor["identifier"]},
            }
        )
        self.notes[note_id] = note
        self.notes_stored_at.append((note_id, time.time()))
        if bump:
            self._touch(ticket, actor)
        return note

    def patch_note(
        self, ticket_id: int, note_id: int, ops: Any, *, member: str | None = None
    ) -> Json:
        with self.lock:
            note = copy.deepcopy(self.get_note(ticket_id, note_id))
            actor = self.member_by_identifier(member) if member else self.api_member()
            if not isinstance(ops, list) or not ops:
                raise _bad_request("The request body must be a non-empty array of patch operations")
            allowed = {
                "text": str,
                "detailDescriptionFlag": bool,
                "internalAnalysisFlag": bool,
                "resolutionFlag": bool,
                "issueFlag": bool,
                "customerUpdatedFlag": bool,
            }
            for op in ops:
                if not isinstance(op, Mapping) or op.get("op") not in ("add", "replace"):
                    raise _bad_request("Only add/replace operations are supported on notes")
                path = str(op.get("path", "")).lstrip("/")
                kind = allowed.get(path)
                if kind is None or not isinstance(op.get("value"), kind):
                    raise _invalid(
                        "serviceNote",
                        [
                            _field_error(
                                "serviceNote", path, f"Cannot patch {path!r} with that value"
                            )
                        ],
                    )
                note[path] = op["value"]
            note["internalFlag"] = note["internalAnalysisFlag"]
            note["externalFlag"] = not note["internalAnalysisFlag"] and (
                note["detailDescriptionFlag"] or note["resolutionFlag"]
            )
            note["_info"] = {
                **note["_info"],
                "lastUpdated": self.now(),
                "updatedBy": actor["identifier"],
            }
            self.notes[note_id] = note
            ticket = self.tickets[ticket_id]
            self._touch(ticket, actor)
            self._emit("updated", ticket, actor)
            return note

    # -- time entries ------------------------------------------------------------------
    def add_time_entry(self, body: Mapping[str, Any], *, member: str | None = None) -> Json:
        """POST /time/entries semantics.  Charged to a service ticket, the entry's ``notes``
        show among the ticket's notes (``allNotes``) with the ``addTo...Flag`` flags, and the
        ticket is bumped (its callbacks fire)."""
        if not isinstance(body, Mapping):
            raise _bad_request("The request body must be a time entry object")
        with self.lock:
            actor = self.member_by_identifier(member) if member else self.api_member()
            errors: list[Json] = []

            def err(field: str, message: str, code: str = "InvalidField") -> None:
                errors.append(_field_error("timeEntry", field, message, code))

            charge_type = body.get("chargeToType")
            charge_id = body.get("chargeToId")
            ticket: Json | None = None
            if charge_type not in CHARGE_TO_TYPES:
                err("chargeToType", f"chargeToType must be one of {', '.join(CHARGE_TO_TYPES)}.")
            if not isinstance(charge_id, int) or isinstance(charge_id, bool):
                err("chargeToId", "The chargeToId field is required.", "MissingRequiredField")
            elif charge_type in ("ServiceTicket", "ProjectTicket"):
                ticket = self.tickets.get(charge_id)
                if ticket is None:
                    err("chargeToId", f"Ticket {charge_id} was not found.", "InvalidObject")
            start_raw, end_raw = body.get("timeStart"), body.get("timeEnd")
            start = end = None
            if not isinstance(start_raw, str):
                err("timeStart", "The timeStart field is required.", "MissingRequiredField")
            else:
                try:
                    start = format_timestamp(parse_timestamp(start_raw))
                except ValueError:
                    err("timeStart", "timeStart must be a date-time.")
            if end_raw is not None:
                try:
                    end = format_timestamp(parse_timestamp(str(end_raw)))
                except ValueError:
                    err("timeEnd", "timeEnd must be a date-time.")
            flags: dict[str, bool] = {}
            for flag in (
                "addToDetailDescriptionFlag",
                "addToInternalAnalysisFlag",
                "addToResolutionFlag",
            ):
                value = body.get(flag)
                if value is not None and not isinstance(value, bool):
                    err(flag, f"{flag} must be true or false.")
                flags[flag] = value is True
            for text_field in ("notes", "internalNotes"):
                value = body.get(text_field)
                if value is not None and not isinstance(value, str):
                    err(text_field, f"{text_field} must be text.")
            member_ref = self._member_ref(actor)
            if body.get("member") is not None:
                try:
                    member_ref = self._resolve("member", body["member"])
                except (ValueError, LookupError) as exc:
                    err("member", str(exc), "InvalidObject")
            if errors:
                raise _invalid("timeEntry", errors)
            now = self.now()
            entry_id = self._next_id("time_entry", 5001)
            entry: Json = {
                "id": entry_id,
                "chargeToId": charge_id,
                "chargeToType": charge_type,
                "member": member_ref,
                "timeStart": start,
                "timeEnd": end,
                "notes": body.get("notes") or "",
                "internalNotes": body.get("internalNotes") or "",
                **flags,
                "dateEntered": now,
                "_info": {
                    "lastUpdated": now,
                    "updatedBy": actor["identifier"],
                    "dateEntered": now,
                    "enteredBy": actor["identifier"],
                },
            }
            if ticket is not None:
                entry["ticket"] = {"id": ticket["id"], "summary": ticket.get("summary", "")}
                if ticket.get("company"):
                    entry["company"] = copy.deepcopy(ticket["company"])
            self.time_entries[entry_id] = entry
            if ticket is not None:
                self._touch(ticket, actor)
                self._emit("updated", ticket, actor)
            return entry

    def get_time_entry(self, entry_id: int) -> Json:
        with self.lock:
            entry = self.time_entries.get(entry_id)
            if entry is None:
                raise _not_found("TimeEntry", entry_id)
            return entry

    def all_notes(self, ticket_id: int) -> list[Json]:
        """``GET /service/tickets/{id}/allNotes``: the ticket's notes and the notes of the time
        entries charged to it, as ``ServiceTicketNote`` records (note and time entry ids are
        separate series: ``noteType`` tells them apart)."""
        with self.lock:
            ticket = self.get_ticket(ticket_id)
            ref = {"id": ticket["id"], "summary": ticket.get("summary", "")}
            out: list[Json] = []
            for note in self.notes.of_ticket(ticket_id):
                record: Json = {
                    "id": note["id"],
                    "noteType": "TicketNote",
                    "ticket": ref,
                    "text": note["text"],
                    "detailDescriptionFlag": note["detailDescriptionFlag"],
                    "internalAnalysisFlag": note["internalAnalysisFlag"],
                    "resolutionFlag": note["resolutionFlag"],
                    "_info": {
                        "lastUpdated": note["_info"]["lastUpdated"],
                        "updatedBy": note["_info"]["updatedBy"],
                        "dateEntered": note["dateCreated"],
                        "enteredBy": note["createdBy"],
                    },
                }
                for key in ("member", "contact"):
                    if note.get(key):
                        record[key] = copy.deepcopy(note[key])
                out.append(record)
            for entry in self.time_entries.values():
                charged = entry["chargeToType"] in ("ServiceTicket", "ProjectTicket")
                if not charged or entry["chargeToId"] != ticket_id or not entry["notes"]:
                    continue
                record = {
                    "id": entry["id"],
                    "noteType": "TimeEntryNote",
                    "ticket": ref,
                    "text": entry["notes"],
                    "detailDescriptionFlag": entry["addToDetailDescriptionFlag"],
                    "internalAnalysisFlag": entry["addToInternalAnalysisFlag"],
                    "resolutionFlag": entry["addToResolutionFlag"],
                    "timeStart": entry["timeStart"],
                    "member": copy.deepcopy(entry["member"]),
                    "_info": dict(entry["_info"]),
                }
                if entry["timeEnd"]:
                    record["timeEnd"] = entry["timeEnd"]
                out.append(record)
            return out

    # -- callbacks -------------------------------------------------------------------
    _CALLBACK_TYPES = (
        "ticket",
        "activity",
        "agreement",
        "company",
        "configuration",
        "contact",
        "expense",
        "invoice",
        "opportunity",
        "project",
        "purchaseorder",
        "productcatalog",
        "schedule",
        "time",
    )
    _TICKET_LEVELS = ("owner", "board", "status", "company", "ticket")

    def add_callback(self, body: Mapping[str, Any], *, member: str | None = None) -> Json:
        if not isinstance(body, Mapping):
            raise _bad_request("The request body must be a callback object")
        with self.lock:
            actor = self.member_by_identifier(member) if member else self.api_member()
            errors: list[Json] = []

            def err(field: str, message: str, code: str = "InvalidField") -> None:
                errors.append(_field_error("callbackEntry", field, message, code))

            url = body.get("url")
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                err("url", "Invalid URL")
            type_ = body.get("type")
            level = body.get("level")
            if not isinstance(type_, str) or type_.lower() not in self._CALLBACK_TYPES:
                err(
                    "type",
                    "Unrecognized type, see documentation for supported types",
                    "InvalidObject",
                )
            elif type_.lower() == "ticket" and (
                not isinstance(level, str) or level.lower() not in self._TICKET_LEVELS
            ):
                err(
                    "level",
                    "Unrecognized level for type, see documentation for supported levels for each type",
                    "InvalidObject",
                )
            elif not isinstance(level, str) or not level:
                err("level", "The level field is required.", "MissingRequiredField")
            object_id = body.get("objectId")
            if not isinstance(object_id, int) or isinstance(object_id, bool):
                err("objectId", "The objectId field is required.", "MissingRequiredField")
            if errors:
                raise _invalid("callbackEntry", errors)
            assert isinstance(level, str)
            assert isinstance(type_, str)
            assert isinstance(object_id, int)
            if level.lower() == "owner":
                object_id = 1
            for existing in self.callbacks.values():
                if (
                    existing["url"] == url
                    and existing["type"].lower() == type_.lower()
                    and existing["level"].lower() == level.lower()
                    and existing["objectId"] == object_id
                ):
                    raise _invalid(
                        "callbackEntry",
                        [
                            _field_error(
                                "callbackEntry",
                                "objectId",
                                "A matching callback entry already exists",
                                "ObjectExists",
                            )
                        ],
                    )
            callback_id = self._next_id("callback")
            callback: Json = {
                "id": callback_id,
                "description": str(body.get("description") or ""),
                "url": url,
                "objectId": object_id,
                "type": type_,
                "level": level,
                "memberId": actor["id"],
                "payloadVersion": str(body.get("payloadVersion") or ""),
                "inactiveFlag": body.get("inactiveFlag") is True,
                "isSoapCallbackFlag": False,
                "isSelfSuppressedFlag": body.get("isSelfSuppressedFlag") is True,
                "connectWiseID": self._uuid(),
                "_info": {"lastUpdated": self.now(), "updatedBy": actor["identifier"]},
            }
            if not callback["payloadVersion"]:
                del callback["payloadVersion"]
            self.callbacks[callback_id] = callback
            return callback

    def get_callback(self, callback_id: int) -> Json:
        with self.lock:
            callback = self.callbacks.get(callback_id)
            if callback is None:
                raise _not_found("CallbackEntry", callback_id)
            return callback

    def delete_callback(self, callback_id: int) -> None:
        with self.lock:
            self.get_callback(callback_id)
            del self.callbacks[callback_id]

    def _callback_hits(self, callback: Json, ticket: Json) -> bool:
        level = str(callback["level"]).lower()
        object_id = callback["objectId"]
        if level == "owner":
            return True
        if level == "board":
            return bool(ticket["board"]["id"] == object_id)
        if level == "status":
            return bool(ticket["status"]["id"] == object_id)
        if level == "company":
            return bool(ticket["company"]["id"] == object_id)
        if level == "ticket":
            return bool(ticket["id"] == object_id)
        return False

    def sign(self, body: bytes, key_id: str | None = None) -> str:
        """``x-content-signature``: base64(HMAC-SHA256(SHA-256(signing key), body))."""
        key = self.signing_keys[key_id or self.current_key_id]
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return base64.b64encode(hmac.new(digest, body, hashlib.sha256).digest()).decode()

    def _emit(self, action: str, ticket: Json, actor: Json, *, skip: bool = False) -> None:
        if skip:
            return
        base = self.base_url
        entity = json.dumps(self.render_ticket(ticket), separators=(",", ":"))
        key_id = self.current_key_id
        for callback in list(self.callbacks.values()):
            if callback["inactiveFlag"] or str(callback["type"]).lower() != "ticket":
                continue
            if not self._callback_hits(callback, ticket):
                continue
            if callback["isSelfSuppressedFlag"] and callback["memberId"] == actor["id"]:
                continue
            payload = {
                "MessageId": self._uuid(),
                "FromUrl": urlsplit(base).netloc,
                "CompanyId": self.company_id,
                "MemberId": actor["identifier"],
                "Action": action,
                "Type": "ticket",
                "ID": ticket["id"],
                "ProductInstanceId": self.product_instance_id,
                "PartnerId": self.partner_id,
                "Entity": entity,
                "Metadata": {"key_url": f"{base}/_sandbox/callbacks/signing-key/{key_id}"},
                "CallbackObjectRecId": callback["id"],
            }
            body = json.dumps(payload).encode()
            headers = {
                "Content-Type": "application/json",
                "x-content-signature": self.sign(body, key_id),
            }
            self.dispatcher.submit(f"{callback['url']}{ticket['id']}", body, headers)

    # -- dump -------------------------------------------------------------------------
    def snapshot(self) -> Json:
        with self.lock:
            return copy.deepcopy(
                {
                    "company_id": self.company_id,
                    "boards": list(self.boards.values()),
                    "statuses": list(self.statuses.values()),
                    "types": list(self.types.values()),
                    "priorities": list(self.priorities.values()),
                    "companies": list(self.companies.values()),
                    "contacts": list(self.contacts.values()),
                    "members": list(self.members.values()),
                    "custom_fields": self.custom_fields,
                    "tickets": list(self.tickets.values()),
                    "notes": list(self.notes.values()),
                    "time_entries": list(self.time_entries.values()),
                    "callbacks": list(self.callbacks.values()),
                    "current_key_id": self.current_key_id,
                    "webhooks": self.dispatcher.settings(),
                    "deliveries": [d.to_json() for d in self.dispatcher.records()],
                }
            )


# -- the app ----------------------------------------------------------------------------


def _cw_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False).encode("utf-8"),
        status_code=status,
        media_type=CW_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _error_renderer(status: int, body: Any) -> tuple[bytes, str]:
    if body is None:
        if status == 429:
            body = {
                "error": "ConnectWiseAPI",
                "message": "Too many requests. Please try again in 30 seconds.",
            }
        elif status >= 500:
            body = {"code": "ConnectWiseApi", "message": "An unexpected error has occurred."}
        else:
            body = {"code": "ConnectWiseApi", "message": f"Request failed with status {status}."}
    return json.dumps(body).encode(), CW_MEDIA_TYPE


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad_request(f"{name} must be an integer") from None


def _path_int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _bad_request(f"{what} must be an integer") from None


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise _bad_request("The request body is missing")
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad_request("The request body is not valid JSON") from None


Render = Callable[[Json], Json]


def _paged(
    request: Request, items: list[Json], fields: str | None = None, render: Render | None = None
) -> Response:
    """One page of ``items`` (rendered after slicing) with ConnectWise's ``Link`` header."""
    page = _int_param(request, "page") or 1
    size = _int_param(request, "pageSize") or _DEFAULT_PAGE_SIZE
    page = max(1, page)
    size = max(1, min(_MAX_PAGE_SIZE, size))
    last = max(1, -(-len(items) // size))
    chunk = items[(page - 1) * size : page * size]
    url = request.url

    def link(n: int, rel: str) -> str:
        return f'<{url.include_query_params(page=n, pageSize=size)}>; rel="{rel}"'

    links = [link(1, "first")]
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links.append(link(page + 1, "next"))
    links.append(link(last, "last"))
    return _cw_response(_page_body(chunk, fields, render), headers={"Link": ", ".join(links)})


def _page_body(chunk: list[Json], fields: str | None, render: Render | None) -> list[Json]:
    return [_project(render(i) if render else copy.deepcopy(i), fields) for i in chunk]


def _forward_only(
    request: Request, items: list[Json], fields: str | None, render: Render | None = None
) -> Response:
    if request.query_params.get("orderBy"):
        raise _bad_request("orderBy is not supported with forward-only pagination")
    page_id = _int_param(request, "pageId") or 0
    size = max(1, min(_MAX_PAGE_SIZE, _int_param(request, "pageSize") or _DEFAULT_PAGE_SIZE))
    rest = sorted((i for i in items if int(i["id"]) > page_id), key=lambda i: int(i["id"]))
    chunk = rest[:size]
    headers: dict[str, str] = {}
    if len(rest) > size:
        next_url = request.url.include_query_params(pageId=chunk[-1]["id"], pageSize=size)
        headers["Link"] = f'<{next_url}>; rel="next"'
    return _cw_response(_page_body(chunk, fields, render), headers=headers)


def _list_response(
    request: Request,
    state: ConnectWiseState,
    items: list[Json],
    registry: Mapping[str, _Field],
    render: Render | None = None,
) -> Response:
    params = request.query_params
    matched = state.query(items, registry, params.get("conditions"), params.get("orderBy"))
    if request.headers.get("pagination-type", "").lower() == "forward-only":
        return _forward_only(request, matched, params.get("fields"), render)
    return _paged(request, matched, params.get("fields"), render)


def _count_response(
    request: Request, state: ConnectWiseState, items: list[Json], registry: Mapping[str, _Field]
) -> Response:
    matched = state.query(items, registry, request.query_params.get("conditions"), None)
    return _cw_response({"count": len(matched)})


def create_app(
    state: ConnectWiseState | None = None,
    *,
    company_id: str = "msp",
    public_key: str = "pub",
    private_key: str = "priv",
    client_id: str = "00000000-0000-0000-0000-000000000000",
) -> FastAPI:
    """The ConnectWise PSA simulator as an ASGI app (state at ``app.state.sandbox``)."""
    state = state or ConnectWiseState(company_id=company_id)
    state.company_id = company_id
    plan = FaultPlan()
    log = RequestLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.dispatcher.close()

    app = FastAPI(
        title="ConnectWise PSA sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.faults = plan
    app.state.requests = log
    app.add_middleware(SandboxMiddleware, plan=plan, log=log, error_renderer=_error_renderer)
    app.include_router(admin_router(plan, log))

    @app.exception_handler(CWError)
    async def _cw_error(request: Request, exc: CWError) -> Response:
        return _cw_response(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _cw_response(
                {"code": "ConnectWiseApi", "message": "The endpoint does not exist."}, 404
            )
        return _cw_response({"code": "ConnectWiseApi", "message": str(exc.detail)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _cw_response({"code": "InvalidObject", "message": "The request is invalid."}, 400)

    def authorize(request: Request) -> str | None:
        """Check Basic auth and clientId; the acting member identifier (None: API member)."""
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        user = password = None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            user, sep, password = decoded.partition(":")
            if not sep:
                user = password = None
        if user is None or password is None:
            raise CWError(401, "Unauthorized", "Authentication is required.")
        company, plus, key = user.partition("+")
        if (
            not plus
            or company.casefold() != company_id.casefold()
            or not hmac.compare_digest(key.encode(), public_key.encode())
            or not hmac.compare_digest(password.encode(), private_key.encode())
        ):
            raise CWError(401, "Unauthorized", "The credentials are not valid.")
        if request.headers.get("clientid") != client_id:
            raise CWError(401, "Unauthorized", "A valid clientId header is required.")
        state.note_request_url(str(request.base_url))
        module = state.denied_module(request.url.path.removeprefix(p))
        if module is not None:
            # The security role lacks the module's Inquire level.  Body shape as the
            # simulator's other errors; the exact wording is [unverified].
            raise CWError(
                403,
                "NotAuthorized",
                f"You do not have access to {module}. Check the API member's security role.",
            )
        member = request.headers.get("x-sandbox-member")
        if member:
            state.member_by_identifier(member)
        return member or None

    p = CW_PREFIX

    # -- tickets ------------------------------------------------------------------
    @app.get(f"{p}/service/tickets")
    async def list_tickets(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(
                request, state, list(state.tickets.values()), TICKET_FIELDS, state.render_ticket
            )

    @app.post(f"{p}/service/tickets/search")
    async def search_tickets(request: Request) -> Response:
        authorize(request)
        body = await _json_body(request)
        conditions = body.get("conditions") if isinstance(body, Mapping) else None
        with state.lock:
            matched = state.query(
                list(state.tickets.values()),
                TICKET_FIELDS,
                conditions,
                request.query_params.get("orderBy"),
            )
            return _paged(request, matched, request.query_params.get("fields"), state.render_ticket)

    @app.get(f"{p}/service/tickets/count")
    async def count_tickets(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _count_response(request, state, list(state.tickets.values()), TICKET_FIELDS)

    @app.get(f"{p}/service/tickets/{{ticket_id}}")
    async def get_ticket(request: Request, ticket_id: str) -> Response:
        authorize(request)
        with state.lock:
            ticket = state.get_ticket(_path_int(ticket_id, "id"))
            return _cw_response(
                _project(state.render_ticket(ticket), request.query_params.get("fields"))
            )

    @app.post(f"{p}/service/tickets")
    async def create_ticket(request: Request) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        with state.lock:
            ticket = state.create_ticket(body, member=member)
            return _cw_response(state.render_ticket(ticket), 201)

    @app.patch(f"{p}/service/tickets/{{ticket_id}}")
    async def patch_ticket(request: Request, ticket_id: str) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        with state.lock:
            ticket = state.patch_ticket(
                _path_int(ticket_id, "id"),
                body,
                member=member,
                ignored=request.scope.get(IGNORED_FIELDS_SCOPE_KEY, frozenset()),
            )
            return _cw_response(state.render_ticket(ticket))

    @app.put(f"{p}/service/tickets/{{ticket_id}}")
    async def put_ticket(request: Request, ticket_id: str) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        with state.lock:
            ticket = state.put_ticket(_path_int(ticket_id, "id"), body, member=member)
            return _cw_response(state.render_ticket(ticket))

    @app.delete(f"{p}/service/tickets/{{ticket_id}}")
    async def delete_ticket(request: Request, ticket_id: str) -> Response:
        member = authorize(request)
        state.delete_ticket(_path_int(ticket_id, "id"), member=member)
        return Response(status_code=204)

    # -- notes ------------------------------------------------------------------------
    @app.get(f"{p}/service/tickets/{{parent_id}}/notes")
    async def list_notes(request: Request, parent_id: str) -> Response:
        authorize(request)
        with state.lock:
            notes = state.ticket_notes(_path_int(parent_id, "parentId"))
            return _list_response(request, state, notes, NOTE_FIELDS, state.render_note)

    @app.get(f"{p}/service/tickets/{{parent_id}}/allNotes")
    async def list_all_notes(request: Request, parent_id: str) -> Response:
        authorize(request)
        with state.lock:
            entries = state.all_notes(_path_int(parent_id, "parentId"))
            return _list_response(request, state, entries, ALL_NOTES_FIELDS, state.render_note)

    @app.get(f"{p}/time/entries")
    async def list_time_entries(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(
                request, state, list(state.time_entries.values()), TIME_ENTRY_FIELDS
            )

    @app.get(f"{p}/time/entries/{{entry_id}}")
    async def get_time_entry(request: Request, entry_id: str) -> Response:
        authorize(request)
        with state.lock:
            entry = state.get_time_entry(_path_int(entry_id, "id"))
            return _cw_response(_project(copy.deepcopy(entry), request.query_params.get("fields")))

    @app.post(f"{p}/time/entries")
    async def add_time_entry(request: Request) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        with state.lock:
            return _cw_response(state.add_time_entry(body, member=member), 201)

    @app.get(f"{p}/service/tickets/{{parent_id}}/notes/count")
    async def count_notes(request: Request, parent_id: str) -> Response:
        authorize(request)
        with state.lock:
            notes = state.ticket_notes(_path_int(parent_id, "parentId"))
            return _count_response(request, state, notes, NOTE_FIELDS)

    @app.get(f"{p}/service/tickets/{{parent_id}}/notes/{{note_id}}")
    async def get_note(request: Request, parent_id: str, note_id: str) -> Response:
        authorize(request)
        with state.lock:
            note = state.get_note(_path_int(parent_id, "parentId"), _path_int(note_id, "id"))
            return _cw_response(
                _project(state.render_note(note), request.query_params.get("fields"))
            )

    @app.post(f"{p}/service/tickets/{{parent_id}}/notes")
    async def add_note(request: Request, parent_id: str) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        with state.lock:
            note = state.add_note(_path_int(parent_id, "parentId"), body, member=member)
            return _cw_response(state.render_note(note), 201)

    @app.patch(f"{p}/service/tickets/{{parent_id}}/notes/{{note_id}}")
    async def patch_note(request: Request, parent_id: str, note_id: str) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        with state.lock:
            note = state.patch_note(
                _path_int(parent_id, "parentId"), _path_int(note_id, "id"), body, member=member
            )
            return _cw_response(state.render_note(note))

    # -- reference data -----------------------------------------------------------------
    @app.get(f"{p}/service/priorities")
    async def list_priorities(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(request, state, list(state.priorities.values()), PRIORITY_FIELDS)

    @app.get(f"{p}/service/priorities/{{priority_id}}")
    async def get_priority(request: Request, priority_id: str) -> Response:
        authorize(request)
        with state.lock:
            priority = state.priorities.get(_path_int(priority_id, "id"))
            if priority is None:
                raise _not_found("Priority", priority_id)
            return _cw_response(priority)

    @app.get(f"{p}/service/boards")
    async def list_boards(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(request, state, list(state.boards.values()), BOARD_FIELDS)

    def board_or_404(board_id: str) -> Json:
        board = state.boards.get(_path_int(board_id, "id"))
        if board is None:
            raise _not_found("Board", board_id)
        return board

    @app.get(f"{p}/service/boards/{{board_id}}")
    async def get_board(request: Request, board_id: str) -> Response:
        authorize(request)
        with state.lock:
            return _cw_response(board_or_404(board_id))

    @app.get(f"{p}/service/boards/{{board_id}}/statuses")
    async def list_statuses(request: Request, board_id: str) -> Response:
        authorize(request)
        with state.lock:
            board = board_or_404(board_id)
            statuses = state.board_statuses(board["id"])
            return _list_response(request, state, statuses, STATUS_FIELDS)

    @app.get(f"{p}/service/boards/{{board_id}}/statuses/count")
    async def count_statuses(request: Request, board_id: str) -> Response:
        authorize(request)
        with state.lock:
            board = board_or_404(board_id)
            return _count_response(request, state, state.board_statuses(board["id"]), STATUS_FIELDS)

    @app.get(f"{p}/service/boards/{{board_id}}/statuses/{{status_id}}")
    async def get_status(request: Request, board_id: str, status_id: str) -> Response:
        authorize(request)
        with state.lock:
            board = board_or_404(board_id)
            status = state.statuses.get(_path_int(status_id, "id"))
            if status is None or status["board"]["id"] != board["id"]:
                raise _not_found("BoardStatus", status_id)
            return _cw_response(status)

    @app.get(f"{p}/service/boards/{{board_id}}/teams")
    async def list_teams(request: Request, board_id: str) -> Response:
        authorize(request)
        with state.lock:
            board = board_or_404(board_id)
            return _list_response(request, state, state.board_teams(board["id"]), TEAM_FIELDS)

    @app.get(f"{p}/service/boards/{{board_id}}/types")
    async def list_types(request: Request, board_id: str) -> Response:
        authorize(request)
        with state.lock:
            board = board_or_404(board_id)
            types = [t for t in state.types.values() if t["board"]["id"] == board["id"]]
            return _list_response(request, state, types, TYPE_FIELDS)

    @app.get(f"{p}/company/companies")
    async def list_companies(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(request, state, list(state.companies.values()), COMPANY_FIELDS)

    @app.get(f"{p}/company/companies/{{company_id_}}")
    async def get_company(request: Request, company_id_: str) -> Response:
        authorize(request)
        with state.lock:
            company = state.companies.get(_path_int(company_id_, "id"))
            if company is None:
                raise _not_found("Company", company_id_)
            return _cw_response(company)

    @app.get(f"{p}/company/contacts")
    async def list_contacts(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(request, state, list(state.contacts.values()), CONTACT_FIELDS)

    @app.get(f"{p}/company/contacts/{{contact_id}}")
    async def get_contact(request: Request, contact_id: str) -> Response:
        authorize(request)
        with state.lock:
            contact = state.contacts.get(_path_int(contact_id, "id"))
            if contact is None:
                raise _not_found("Contact", contact_id)
            return _cw_response(contact)

    @app.get(f"{p}/system/members")
    async def list_members(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(request, state, list(state.members.values()), MEMBER_FIELDS)

    @app.get(f"{p}/system/members/{{member_id}}")
    async def get_member(request: Request, member_id: str) -> Response:
        authorize(request)
        with state.lock:
            member = state.members.get(_path_int(member_id, "id"))
            if member is None:
                raise _not_found("Member", member_id)
            return _cw_response(member)

    # -- callbacks --------------------------------------------------------------------------
    @app.get(f"{p}/system/callbacks")
    async def list_callbacks(request: Request) -> Response:
        authorize(request)
        with state.lock:
            return _list_response(request, state, list(state.callbacks.values()), CALLBACK_FIELDS)

    @app.post(f"{p}/system/callbacks")
    async def add_callback(request: Request) -> Response:
        member = authorize(request)
        body = await _json_body(request)
        return _cw_response(state.add_callback(body, member=member), 201)

    @app.get(f"{p}/system/callbacks/{{callback_id}}")
    async def get_callback(request: Request, callback_id: str) -> Response:
        authorize(request)
        return _cw_response(state.get_callback(_path_int(callback_id, "id")))

    @app.delete(f"{p}/system/callbacks/{{callback_id}}")
    async def delete_callback(request: Request, callback_id: str) -> Response:
        authorize(request)
        state.delete_callback(_path_int(callback_id, "id"))
        return Response(status_code=204)

    # -- sandbox admin -------------------------------------------------------------------------
    @app.get("/_sandbox/callbacks/signing-key/{key_id}")
    async def signing_key(key_id: str) -> Response:
        with state.lock:
            state.key_fetches += 1
            key = state.signing_keys.get(key_id)
        if key is None:
            return JSONResponse({"code": "NotFound", "message": "Unknown key"}, status_code=404)
        return JSONResponse({"signing_key": key})

    @app.get("/_sandbox/callbacks/key-fetches")
    async def key_fetches() -> Response:
        return JSONResponse({"count": state.key_fetches})

    @app.post("/_sandbox/callbacks/rotate-key")
    async def rotate_key() -> Response:
        return JSONResponse({"key_id": state.rotate_signing_key()})

    @app.post("/_sandbox/webhooks")
    async def configure_webhooks(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            enabled = body.get("enabled")
            drop_rate = body.get("drop_rate")
            if enabled is not None and not isinstance(enabled, bool):
                raise ValueError("enabled must be a boolean")
            if drop_rate is not None and (
                not isinstance(drop_rate, int | float) or isinstance(drop_rate, bool)
            ):
                raise ValueError("drop_rate must be a number")
            state.dispatcher.configure(
                enabled=enabled, drop_rate=float(drop_rate) if drop_rate is not None else None
            )
        except (ValueError, AttributeError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse(state.dispatcher.settings())

    @app.get("/_sandbox/webhooks")
    async def webhook_settings() -> Response:
        return JSONResponse(state.dispatcher.settings())

    @app.get("/_sandbox/deliveries")
    async def deliveries() -> Response:
        return JSONResponse([d.to_json() for d in state.dispatcher.records()])

    @app.get("/_sandbox/state")
    async def dump_state() -> Response:
        return JSONResponse(state.snapshot())

    return app
