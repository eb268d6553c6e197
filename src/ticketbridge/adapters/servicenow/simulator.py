"""A stateful ServiceNow Table API simulator.

Serves ``/api/now/table/{tableName}`` (and the versioned ``/api/now/v2/...``)
for the tables ticketbridge touches: ``incident`` (read/write, with the
incident state model, priority lookup, journal fields), and read-only
``sys_journal_field``, ``sys_user``, ``sys_user_group``, ``core_company``,
``sys_choice`` and ``sys_dictionary`` (a table a role does not cover can be
made unreadable: :meth:`ServiceNowState.deny_read`).  Encoded queries (``sysparm_query``), field selection,
paging with ``Link``/``X-Total-Count``, display values, reference links,
``X-no-response-body`` and ServiceNow's error bodies behave as the real
Table API does.

ServiceNow has no built-in webhooks; instances use a Business Rule plus an
Outbound REST Message with a static secret header.  That is simulated by
``POST /_sandbox/outbound``.  Read ACLs are switched on per user and table with
``POST /_sandbox/acl`` (``{"user", "table", "query"}``: the rows that user may read);
as on an instance, a list applies ``sysparm_limit``/``sysparm_offset`` before the
ACL, so a restricted user gets short or empty pages while ``X-Total-Count`` and
``Link`` count every row.  Other extras live under ``/_sandbox`` too.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketbridge.sandbox._faults import (
    FaultPlan,
    OutboundDispatcher,
    RequestLog,
    SandboxMiddleware,
    admin_router,
)

__all__ = [
    "DEFAULT_USERS",
    "SN_MEDIA_TYPE",
    "SNError",
    "ServiceNowState",
    "create_app",
    "priority_for",
]

SN_MEDIA_TYPE = "application/json;charset=UTF-8"
DEFAULT_USERS: Mapping[str, str] = {
    "ticketbridge.integration": "integration-pass",
    "beth.anglin": "agent-pass",
}
_DEFAULT_LIMIT = 10000
_SYS_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_DT_FORMAT = "%Y-%m-%d %H:%M:%S"

Record = dict[str, str]
Json = dict[str, Any]
ColKind = Literal["string", "integer", "boolean", "datetime", "reference", "journal"]
DisplayMode = Literal["false", "true", "all"]

STATE_LABELS = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
HOLD_REASON_LABELS = {
    "1": "Awaiting Caller",
    "3": "Awaiting Problem",
    "4": "Awaiting Vendor",
    "5": "Awaiting Change",
}
IMPACT_LABELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
PRIORITY_LABELS = {
    "1": "1 - Critical",
    "2": "2 - High",
    "3": "3 - Moderate",
    "4": "4 - Low",
    "5": "5 - Planning",
}
CONTACT_TYPE_LABELS = {
    "email": "Email",
    "phone": "Phone",
    "self-service": "Self-service",
    "virtual_agent": "Virtual Agent",
    "walk-in": "Walk-in",
}
CLOSE_CODE_LABELS = {
    value: value
    for value in (
        "Duplicate",
        "Known error",
        "No resolution provided",
        "Resolved by caller",
        "Resolved by change",
        "Resolved by problem",
        "Resolved by request",
        "Solution provided",
        "Workaround provided",
        "User error",
    )
}
_JOURNAL_LABELS = {"comments": "Additional comments", "work_notes": "Work notes"}

#: Where the API lives and how to log in, printed by ``ticketbridge sandbox``.
LOGIN_HINT = " (ticketbridge.integration / integration-pass, beth.anglin / agent-pass)"


def priority_for(impact: str, urgency: str) -> str:
    """ServiceNow's default priority lookup: impact x urgency (1 High .. 3 Low) -> 1..5."""
    try:
        i = min(3, max(1, int(impact)))
        u = min(3, max(1, int(urgency)))
    except ValueError:
        return "5"
    return str({2: 1, 3: 2, 4: 3, 5: 4, 6: 5}[i + u])


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_datetime(dt: datetime) -> str:
    """ServiceNow's stored form: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return _utc(dt).strftime(_DT_FORMAT)


def parse_datetime(text: str) -> datetime | None:
    """A stored or query date-time (taken as UTC); None when it is not one."""
    value = text.strip()
    for fmt in (_DT_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# -- errors -----------------------------------------------------------------------


class SNError(Exception):
    """An API error with ServiceNow's body ``{"error": {message, detail}, "status": "failure"}``."""

    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail

    def body(self) -> Json:
        return {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}


def _no_record() -> SNError:
    return SNError(
        404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
    )


def _acl_denied(operation: str) -> SNError:
    return SNError(
        403, "Operation Failed", f"ACL Exception {operation} Failed due to security constraints"
    )


def _data_policy(labels: Iterable[str]) -> SNError:
    return SNError(
        403,
        "Operation Failed",
        "Data Policy Exception: \n The following fields are mandatory: " + ", ".join(labels) + "\n",
    )


# -- schema -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColKind = "string"
    ref: str | None = None
    choices: Mapping[str, str] | None = None
    label: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: Mapping[str, Column]
    display: str
    writable: bool = False
    journal: bool = False


def _cols(*columns: Column) -> dict[str, Column]:
    return {c.name: c for c in columns}


def _sys_columns(*, updates: bool = True, class_name: bool = True) -> list[Column]:
    cols = [
        Column("sys_id"),
        Column("sys_created_on", "datetime"),
        Column("sys_created_by"),
    ]
    if updates:
        cols += [
            Column("sys_updated_on", "datetime"),
            Column("sys_updated_by"),
            Column("sys_mod_count", "integer"),
        ]
    cols.append(Column("sys_tags"))
    if class_name:
        cols.append(Column("sys_class_name"))
    return cols


def _user_ref(name: str, label: str = "") -> Column:
    return Column(name, "reference", "sys_user", label=label)


INCIDENT = Table(
    "incident",
    _cols(
        Column("number", label="Number"),
        Column("short_description", label="Short description"),
        Column("description", label="Description"),
        Column("state", "integer", choices=STATE_LABELS, label="State"),
        Column("incident_state", "integer", choices=STATE_LABELS, label="Incident state"),
        Column("hold_reason", "integer", choices=HOLD_REASON_LABELS, label="On hold reason"),
        Column("impact", "integer", choices=IMPACT_LABELS, label="Impact"),
        Column("urgency", "integer", choices=IMPACT_LABELS, label="Urgency"),
        Column("priority", "integer", choices=PRIORITY_LABELS, label="Priority"),
        Column("severity", "integer", choices=IMPACT_LABELS, label="Severity"),
        Column("company", "reference", "core_company", label="Company"),
        _user_ref("caller_id", "Caller"),
        _user_ref("opened_by", "Opened by"),
        Column("opened_at", "datetime", label="Opened"),
        _user_ref("assigned_to", "Assigned to"),
        Column("assignment_group", "reference", "sys_user_group", label="Assignment group"),
        Column("contact_type", choices=CONTACT_TYPE_LABELS, label="Channel"),
        Column("category", label="Category"),
        Column("subcategory", label="Subcategory"),
        Column("correlation_id", label="Correlation ID"),
        Column("correlation_display", label="Correlation display"),
        Column("close_code", choices=CLOSE_CODE_LABELS, label="Resolution code"),
        Column("close_notes", label="Resolution notes"),
        Column("resolved_at", "datetime", label="Resolved"),
        _user_ref("resolved_by", "Resolved by"),
        Column("closed_at", "datetime", label="Closed"),
        _user_ref("closed_by", "Closed by"),
        Column("active", "boolean", label="Active"),
        Column("reopen_count", "integer", label="Reopen count"),
        Column("reassignment_count", "integer", label="Reassignment count"),
        Column("escalation", "integer", label="Escalation"),
        Column("notify", "integer", label="Notify"),
        Column("made_sla", "boolean", label="Made SLA"),
        Column("knowledge", "boolean", label="Knowledge"),
        Column("approval", label="Approval"),
        Column("upon_approval", label="Upon approval"),
        Column("upon_reject", label="Upon reject"),
        Column("child_incidents", "integer", label="Child incidents"),
        Column("parent_incident", "reference", "incident", label="Parent incident"),
        Column("watch_list", label="Watch list"),
        Column("work_notes_list", label="Work notes list"),
        Column("due_date", "datetime", label="Due date"),
        Column("comments", "journal", label="Additional comments"),
        Column("work_notes", "journal", label="Work notes"),
        Column("comments_and_work_notes", "journal", label="Comments and Work notes"),
        Column("sys_domain", "reference", "sys_user_group", label="Domain"),
        Column("sys_domain_path", label="Domain path"),
        *_sys_columns(),
    ),
    display="number",
    writable=True,
)

JOURNAL = Table(
    "sys_journal_field",
    _cols(
        Column("element", label="Element"),
        Column("element_id", label="Element ID"),
        Column("name", label="Table name"),
        Column("value", label="Value"),
        *_sys_columns(updates=False, class_name=False),
    ),
    display="value",
    journal=True,
)

USERS = Table(
    "sys_user",
    _cols(
        Column("user_name", label="User ID"),
        Column("name", label="Name"),
        Column("first_name", label="First name"),
        Column("last_name", label="Last name"),
        Column("email", label="Email"),
        Column("phone", label="Business phone"),
        Column("title", label="Title"),
        Column("company", "reference", "core_company", label="Company"),
        Column("time_zone", label="Time zone"),
        Column("active", "boolean", label="Active"),
        *_sys_columns(),
    ),
    display="name",
)

GROUPS = Table(
    "sys_user_group",
    _cols(
        Column("name", label="Name"),
        Column("description", label="Description"),
        Column("email", label="Group email"),
        _user_ref("manager", "Manager"),
        Column("active", "boolean", label="Active"),
        *_sys_columns(),
    ),
    display="name",
)

COMPANIES = Table(
    "core_company",
    _cols(
        Column("name", label="Name"),
        Column("customer", "boolean", label="Customer"),
        Column("vendor", "boolean", label="Vendor"),
        Column("manufacturer", "boolean", label="Manufacturer"),
        Column("phone", label="Phone"),
        Column("city", label="City"),
        Column("country", label="Country"),
        *_sys_columns(),
    ),
    display="name",
)

CHOICES = Table(
    "sys_choice",
    _cols(
        Column("name", label="Table"),
        Column("element", label="Element"),
        Column("value", label="Value"),
        Column("label", label="Label"),
        Column("sequence", "integer", label="Sequence"),
        Column("inactive", "boolean", label="Inactive"),
        Column("language", label="Language"),
        *_sys_columns(),
    ),
    display="label",
)

DICTIONARY = Table(
    "sys_dictionary",
    _cols(
        Column("name", label="Table"),
        Column("element", label="Column name"),
        Column("column_label", label="Column label"),
        Column("internal_type", label="Type"),
        Column("reference", label="Reference"),
        Column("active", "boolean", label="Active"),
        *_sys_columns(),
    ),
    display="column_label",
)

TABLES: Mapping[str, Table] = {
    t.name: t for t in (INCIDENT, JOURNAL, USERS, GROUPS, COMPANIES, CHOICES, DICTIONARY)
}


def _not_authorized() -> SNError:
    """A table the user's roles may not read at all (table-level read ACL).

    The body is the Table API's 403 as public client code and forum reports show it
    [unverified on a vendor page]."""
    return SNError(403, "User Not Authorized", "Not permitted")


# -- encoded queries ----------------------------------------------------------------

_TERM_RE = re.compile(
    r"^(?P<field>[a-z0-9_.]+?)"
    r"(?P<op>ISNOTEMPTY|ISEMPTY|ANYTHING|NOT LIKE|NOT IN|STARTSWITH|ENDSWITH|LIKE|IN|!=|>=|<=|=|>|<)"
    r"(?P<value>.*)$",
    re.DOTALL,
)
_DATE_GENERATE_RE = re.compile(
    r"^javascript:\s*gs\.dateGenerate\(\s*'(\d{4}-\d{2}-\d{2})'\s*,\s*'(\d{2}:\d{2}:\d{2})'\s*\)\s*;?$"
)
_GET_USER_ID_RE = re.compile(r"^javascript:\s*gs\.getUserID\(\)\s*;?$")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str


@dataclass
class EncodedQuery:
    """``groups`` are OR-ed (``^NQ``); a group's clauses are AND-ed; a clause's terms OR-ed."""

    groups: list[list[list[Condition]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)


def parse_encoded_query(text: str | None) -> EncodedQuery:
    """Split an encoded query into conditions (``^``, ``^OR``, ``^NQ``, ``ORDERBY``)."""
    query = EncodedQuery()
    if not text:
        return query
    escaped = text.replace("^^", "\x00")
    for group_text in escaped.split("^NQ"):
        clauses: list[list[Condition]] = []
        for raw in group_text.split("^"):
            part = raw.replace("\x00", "^")
            if not part or part == "EQ" or part.startswith("GROUPBY"):
                continue
            if part.startswith("ORDERBYDESC"):
                query.order.append((part[len("ORDERBYDESC") :], True))
                continue
            if part.startswith("ORDERBY"):
                query.order.append((part[len("ORDERBY") :], False))
                continue
            is_or = part.startswith("OR") and bool(clauses)
            m = _TERM_RE.match(part[2:] if is_or else part)
            if m is None:
                continue  # an invalid part is ignored, as the instance does by default
            condition = Condition(m.group("field"), m.group("op"), m.group("value"))
            if is_or:
                clauses[-1].append(condition)
            else:
                clauses.append([condition])
        if clauses:
            query.groups.append(clauses)
    return query


# -- state --------------------------------------------------------------------------------


class _RowsByField(dict[str, Record]):
    """A table's rows by sys_id, also indexed by one column's folded value (the journal by
    ``element_id``), so reading one record's journal does not scan every entry.  A bucket
    lists its rows in this dict's order (insertion order; an update keeps a row's place)."""

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column
        self.buckets: dict[str, dict[str, Record]] = {}

    def __setitem__(self, key: str, value: Record) -> None:
        old = self.get(key)
        moved = old is not None and old.get(self.column, "") != value.get(self.column, "")
        if moved:
            assert old is not None
            self._unindex(key, old)
        super().__setitem__(key, value)
        folded = value.get(self.column, "").casefold()
        if moved:  # keep the bucket in this dict's order
            self.buckets[folded] = {
                k: r for k, r in self.items() if r.get(self.column, "").casefold() == folded
            }
        else:
            self.buckets.setdefault(folded, {})[key] = value

    def __delitem__(self, key: str) -> None:
        self._unindex(key, self[key])
        super().__delitem__(key)

    def _unindex(self, key: str, row: Record) -> None:
        folded = row.get(self.column, "").casefold()
        bucket = self.buckets.get(folded)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self.buckets[folded]

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._unindex(key, self[key])
        return super().pop(key, *default)

    def clear(self) -> None:
        super().clear()
        self.buckets.clear()

    def with_value(self, value: str) -> list[Record]:
        """The rows whose column folds to ``value``'s fold, in this dict's order."""
        return list(self.buckets.get(value.casefold(), {}).values())


@dataclass
class OutboundConfig:
    """The simulated Business Rule + Outbound REST Message."""

    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    enabled: bool = True

    def to_json(self) -> Json:
        return {"url": self.url, "headers": dict(self.headers), "enabled": self.enabled}


@dataclass(frozen=True, slots=True)
class _Resolved:
    column: Column
    table: Table
    getter: Callable[[Record], str]


class ServiceNowState:
    """The instance's tables, behind one lock.  Use the methods to change data."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
        seed_data: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], datetime] = clock or _system_clock
        self.rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self.tables: dict[str, dict[str, Record]] = {name: {} for name in TABLES}
        self.tables["sys_journal_field"] = _RowsByField("element_id")
        #: (sys_id, wall-clock ``time.time()``) of each journal entry written, in order, for
        #: benchmarks measuring when a note reached the instance.
        self.journal_stored_at: list[tuple[str, float]] = []
        self.public_url: str | None = None
        self._seen_url = "http://127.0.0.1"
        self.outbound = OutboundConfig()
        self.dispatcher = OutboundDispatcher(timeout=5.0, seed=seed)
        self._next_number = 10001
        #: (user_name, table) -> encoded query of the rows that user may read
        self.read_acls: dict[tuple[str, str], str] = {}
        #: Tables no user may read (a role removed from the integration user); switch on
        #: with :meth:`deny_read` to see the product's 403.
        self.read_denied: set[str] = set()
        self._seed_dictionary()
        if seed_data:
            self.seed_default()

    def deny_read(self, *table_names: str) -> None:
        """Make reading these tables fail as a missing read ACL does (403)."""
        with self.lock:
            self.read_denied.update(table_names)

    def _seed_dictionary(self) -> None:
        """One ``sys_dictionary`` row per column of every table (schema, not seed data).

        Fixed ids, so the random ids of seed data stay as they were."""
        import hashlib

        for table in TABLES.values():
            if table is DICTIONARY:
                continue
            for column in table.columns.values():
                sys_id = hashlib.md5(  # noqa: S324 - a stable id, not a secret
                    f"{table.name}.{column.name}".encode()
                ).hexdigest()
                self._insert_raw(
                    "sys_dictionary",
                    {
                        "sys_id": sys_id,
                        "name": table.name,
                        "element": column.name,
                        "column_label": column.label or column.name,
                        "internal_type": column.kind,
                        "reference": column.ref or "",
                        "active": "true",
                    },
                    by="system",
                )

    # -- helpers ------------------------------------------------------------------
    def now(self) -> str:
        return format_datetime(self.clock())

    def new_sys_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    @property
    def base_url(self) -> str:
        return (self.public_url or self._seen_url).rstrip("/")

    def note_request_url(self, base_url: str) -> None:
        self._seen_url = base_url.rstrip("/")

    def _blank(self, table: Table) -> Record:
        return dict.fromkeys(table.columns, "")

    def _insert_raw(
        self, table_name: str, values: Mapping[str, str], *, by: str = "admin"
    ) -> Record:
        table = TABLES[table_name]
        now = self.now()
        record = self._blank(table)
        record.update(values)
        record["sys_id"] = record["sys_id"] or self.new_sys_id()
        record["sys_created_on"] = record["sys_created_on"] or now
        record["sys_created_by"] = record["sys_created_by"] or by
        if "sys_updated_on" in record:
            record["sys_updated_on"] = record["sys_updated_on"] or now
            record["sys_updated_by"] = record["sys_updated_by"] or by
            record["sys_mod_count"] = record["sys_mod_count"] or "0"
        if "sys_class_name" in record:
            record["sys_class_name"] = table_name
        self.tables[table_name][record["sys_id"]] = record
        return record

    # -- seed data --------------------------------------------------------------------
    def seed_default(self) -> None:
        """Companies, groups, users (with time zones) and incident choice lists."""
        with self.lock:
            acme = self.add_company("Acme Dental Group", city="Springfield")
            self.add_company("Globex Logistics", city="Cypress Creek")
            self.add_company("ServiceNow Vendor Support", customer=False, vendor=True)
            self.add_group("Service Desk", "First line support")
            self.add_group("Network Operations", "Network and connectivity")
            self.add_user(
                "ticketbridge.integration", "TicketBridge", "Integration", time_zone="GMT"
            )
            self.add_user(
                "beth.anglin",
                "Beth",
                "Anglin",
                time_zone="America/Los_Angeles",
                title="Service Desk Agent",
            )
            self.add_user(
                "abel.tuter", "Abel", "Tuter", company=acme["sys_id"], time_zone="America/New_York"
            )
            for element, labels in (
                ("state", STATE_LABELS),
                ("hold_reason", HOLD_REASON_LABELS),
                ("impact", IMPACT_LABELS),
                ("urgency", IMPACT_LABELS),
                ("priority", PRIORITY_LABELS),
                ("contact_type", CONTACT_TYPE_LABELS),
                ("close_code", CLOSE_CODE_LABELS),
            ):
                for n, (value, label) in enumerate(labels.items()):
                    self._insert_raw(
                        "sys_choice",
                        {
                            "name": "incident",
                            "element": element,
                            "value": value,
                            "label": label,
                            "sequence": str(n + 1),
                            "inactive": "false",
                            "language": "en",
                        },
                    )

    def add_company(
        self, name: str, *, city: str = "", customer: bool = True, vendor: bool = False
    ) -> Record:
        with self.lock:
            return self._insert_raw(
                "core_company",
                {
                    "name": name,
                    "customer": str(customer).lower(),
                    "vendor": str(vendor).lower(),
                    "manufacturer": "false",
                    "city": city,
                    "country": "USA",
                },
            )

    def add_group(self, name: str, description: str = "") -> Record:
        with self.lock:
            email = name.lower().replace(" ", ".") + "@example.com"
            return self._insert_raw(
                "sys_user_group",
                {"name": name, "description": description, "email": email, "active": "true"},
            )

    def add_user(
        self,
        user_name: str,
        first_name: str,
        last_name: str,
        *,
        email: str | None = None,
        time_zone: str = "GMT",
        title: str = "",
        company: str = "",
    ) -> Record:
        with self.lock:
            return self._insert_raw(
                "sys_user",
                {
                    "user_name": user_name,
                    "name": f"{first_name} {last_name}".strip(),
                    "first_name": first_name,
                    "last_name": last_name,
                    "email": email or f"{user_name}@example.com",
                    "time_zone": time_zone,
                    "title": title,
                    "company": company,
                    "active": "true",
                },
            )

    def user(self, user_name: str) -> Record | None:
        with self.lock:
            for record in self.tables["sys_user"].values():
                if record["user_name"] == user_name:
                    return record
        return None

    def _user_display(self, user_name: str) -> str:
        user = self.user(user_name)
        return user["name"] if user else user_name

    # -- reading -------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        table = TABLES.get(name)
        if table is None:
            raise SNError(400, f"Invalid table {name}", "")
        return table

    def get(self, table_name: str, sys_id: str) -> Record:
        with self.lock:
            self.table(table_name)
            record = self.tables[table_name].get(sys_id)
            if record is None:
                raise _no_record()
            return record

    def resolve_field(self, table: Table, path: str) -> _Resolved | None:
        """A (possibly dot-walked) field: its column and a getter; None when unknown."""
        parts = path.split(".")
        column = table.columns.get(parts[0])
        if column is None:
            return None
        if len(parts) == 1:
            name = parts[0]
            return _Resolved(column, table, lambda rec: rec.get(name, ""))
        target = TABLES.get(column.ref or "") if column.kind == "reference" else None
        if target is None:
            return None
        inner = self.resolve_field(target, ".".join(parts[1:]))
        if inner is None:
            return None
        ref_name = parts[0]
        rows = self.tables[target.name]
        inner_get = inner.getter

        def getter(rec: Record) -> str:
            ref = rows.get(rec.get(ref_name, ""))
            return inner_get(ref) if ref is not None else ""

        return _Resolved(inner.column, inner.table, getter)

    def _literal(self, column: Column, raw: str, user: Record | None) -> str | None:
        """A query value as stored form; None when it cannot be used (the part is dropped)."""
        value = raw
        m = _DATE_GENERATE_RE.match(value)
        if m:
            zone = _zone(user["time_zone"] if user else "UTC")
            local = datetime.strptime(f"{m.group(1)} {m.group(2)}", _DT_FORMAT).replace(tzinfo=zone)
            return format_datetime(local)
        if _GET_USER_ID_RE.match(value):
            return user["sys_id"] if user else ""
        if value.startswith("javascript:"):
            return None
        if column.kind == "datetime" and value:
            parsed = parse_datetime(value)
            return format_datetime(parsed) if parsed else None
        return value

    def _condition(
        self, table: Table, cond: Condition, user: Record | None
    ) -> Callable[[Record], bool] | None:
        resolved = self.resolve_field(table, cond.field)
        if resolved is None:
            return None
        column, get = resolved.column, resolved.getter
        op = cond.op
        if op == "ANYTHING":
            return lambda rec: True
        if op == "ISEMPTY":
            return lambda rec: get(rec) == ""
        if op == "ISNOTEMPTY":
            return lambda rec: get(rec) != ""
        if op in ("IN", "NOT IN"):
            values = [self._literal(column, v, user) for v in cond.value.split(",")]
            wanted = {_fold(column, v) for v in values if v is not None}
            negate = op == "NOT IN"

            def in_pred(rec: Record) -> bool:
                value = get(rec)
                if value == "":
                    return "" in wanted and not negate
                hit = _fold(column, value) in wanted
                return not hit if negate else hit

            return in_pred
        literal = self._literal(column, cond.value, user)
        if literal is None:
            return None
        if op in ("LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH"):
            needle = literal.casefold()
            test: Callable[[str], bool] = {
                "LIKE": lambda v: needle in v,
                "NOT LIKE": lambda v: needle not in v,
                "STARTSWITH": lambda v: v.startswith(needle),
                "ENDSWITH": lambda v: v.endswith(needle),
            }[op]

            def like_pred(rec: Record) -> bool:
                value = get(rec)
                return value != "" and test(value.casefold())

            return like_pred
        if literal == "" and op in ("=", "!="):
            want_empty = op == "="
            return lambda rec: (get(rec) == "") == want_empty
        target = _sort_key(column, literal)
        compare: Callable[[Any, Any], bool] = {
            "=": lambda a, b: bool(a == b),
            "!=": lambda a, b: bool(a != b),
            ">": lambda a, b: bool(a > b),
            ">=": lambda a, b: bool(a >= b),
            "<": lambda a, b: bool(a < b),
            "<=": lambda a, b: bool(a <= b),
        }[op]

        def cmp_pred(rec: Record) -> bool:
            value = get(rec)
            if value == "":
                return False
            try:
                return compare(_sort_key(column, value), target)
            except TypeError:
                return compare(value.casefold(), literal.casefold())

        return cmp_pred

    def _matcher(
        self, table: Table, parsed: EncodedQuery, user: Record | None
    ) -> Callable[[Record], bool]:
        groups: list[list[list[Callable[[Record], bool]]]] = []
        for group in parsed.groups:
            clauses = []
            for clause in group:
                preds = [p for p in (self._condition(table, c, user) for c in clause) if p]
                if preds:
                    clauses.append(preds)
            groups.append(clauses)

        def matches(rec: Record) -> bool:
            if not groups:
                return True
            return any(all(any(p(rec) for p in clause) for clause in group) for group in groups)

        return matches

    def restrict_reads(self, user_name: str, table_name: str, encoded: str | None) -> None:
        """Let ``user_name`` read only the ``table_name`` rows matching ``encoded`` (a read
        ACL); ``None`` lifts the restriction.  As on an instance, list reads apply
        ``sysparm_limit``/``sysparm_offset`` first and the ACL after: a restricted user
        gets short or empty pages, and ``X-Total-Count`` counts rows before the ACL."""
        with self.lock:
            self.table(table_name)
            if encoded is None:
                self.read_acls.pop((user_name, table_name), None)
            else:
                self.read_acls[(user_name, table_name)] = encoded

    def readable(self, table_name: str, record: Record, user_name: str) -> bool:
        """Whether the read ACLs let ``user_name`` see ``record``."""
        with self.lock:
            encoded = self.read_acls.get((user_name, table_name))
            if encoded is None:
                return True
            table = self.table(table_name)
            user = self.user(user_name)
            return self._matcher(table, parse_encoded_query(encoded), user)(record)

    def query(
        self, table_name: str, encoded: str | None, *, user: Record | None = None
    ) -> list[Record]:
        """Records matching an encoded query, ordered as it says (insertion order otherwise)."""
        with self.lock:
            table = self.table(table_name)
            parsed = parse_encoded_query(encoded)
            matches = self._matcher(table, parsed, user)
            rows = self._candidates(table_name, table, parsed, user)
            matched = [r for r in rows if matches(r)]
            for name, desc in reversed(parsed.order):
                resolved = self.resolve_field(table, name)
                if resolved is None:
                    continue
                column, get = resolved.column, resolved.getter

                def key(
                    rec: Record, column: Column = column, get: Callable[[Record], str] = get
                ) -> tuple[int, Any]:
                    value = get(rec)
                    return (0, "") if value == "" else (1, _sort_key(column, value))

                matched.sort(key=key, reverse=desc)
            return matched

    def _candidates(
        self, table_name: str, table: Table, parsed: EncodedQuery, user: Record | None
    ) -> list[Record]:
        """The rows a query can match: an indexed table's bucket when the query's only
        group requires ``<indexed column>=<value>``, else every row (same result either way,
        the matcher still runs on each candidate)."""
        rows = self.tables[table_name]
        if isinstance(rows, _RowsByField) and len(parsed.groups) == 1:
            column = table.columns[rows.column]
            for clause in parsed.groups[0]:
                if len(clause) != 1:
                    continue
                cond = clause[0]
                if cond.field != rows.column or cond.op != "=":
                    continue
                literal = self._literal(column, cond.value, user)
                if literal:
                    return rows.with_value(literal)
        return list(rows.values())

    # -- rendering ---------------------------------------------------------------------------
    def link(self, table: str, sys_id: str) -> str:
        return f"{self.base_url}/api/now/table/{table}/{sys_id}"

    def display_value(self, column: Column, value: str, record: Record, user: Record | None) -> str:
        if column.kind == "journal":
            return self._journal_display(column.name, record)
        if value == "":
            return ""
        if column.choices is not None:
            return column.choices.get(value, value)
        if column.kind == "reference" and column.ref:
            target = TABLES.get(column.ref)
            ref = self.tables.get(column.ref, {}).get(value)
            if target is None or ref is None:
                return value if column.name == "sys_domain" else ""
            return ref.get(target.display, "")
        if column.kind == "datetime":
            parsed = parse_datetime(value)
            if parsed is None:
                return value
            zone = _zone(user["time_zone"] if user else "UTC")
            return parsed.astimezone(zone).strftime(_DT_FORMAT)
        return value

    def _journal_display(self, element: str, record: Record) -> str:
        elements = (
            ("comments", "work_notes") if element == "comments_and_work_notes" else (element,)
        )
        journal = self.tables["sys_journal_field"]
        sys_id = record.get("sys_id")
        candidates = (
            journal.with_value(sys_id)
            if isinstance(journal, _RowsByField) and sys_id
            else list(journal.values())
        )
        entries = [j for j in candidates if j["element_id"] == sys_id and j["element"] in elements]
        entries.reverse()
        return "".join(
            f"{j['sys_created_on']} - {self._user_display(j['sys_created_by'])} "
            f"({_JOURNAL_LABELS.get(j['element'], j['element'])})\n{j['value']}\n\n"
            for j in entries
        )

    def render(
        self,
        table: Table,
        record: Record,
        *,
        fields: list[str] | None = None,
        mode: DisplayMode = "false",
        exclude_links: bool = False,
        user: Record | None = None,
    ) -> Json:
        out: Json = {}
        names = fields if fields else list(table.columns)
        for name in names:
            resolved = self.resolve_field(table, name)
            if resolved is None:
                continue  # invalid fields are ignored
            column = resolved.column
            value = "" if column.kind == "journal" else resolved.getter(record)
            owner: Record = record if "." not in name else {}
            link = None
            if column.kind == "reference" and column.ref and value and not exclude_links:
                link = self.link(column.ref, value)
            if mode == "false":
                out[name] = {"link": link, "value": value} if link else value
                continue
            display = self.display_value(column, value, owner, user)
            if mode == "true":
                out[name] = {"display_value": display, "link": link} if link else display
            else:
                entry: Json = {"display_value": display, "value": value}
                if link:
                    entry["link"] = link
                out[name] = entry
        return out

    # -- writing -------------------------------------------------------------------------------
    def _coerce(self, column: Column, raw: Any) -> str:
        if raw is None:
            return ""
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, int):
            return str(raw)
        if isinstance(raw, float):
            return str(int(raw)) if raw.is_integer() else str(raw)
        if isinstance(raw, Mapping):
            raw = raw.get("value", raw.get("sys_id", ""))
            return self._coerce(column, raw)
        if isinstance(raw, list):
            return ",".join(self._coerce(column, item) for item in raw)
        value = str(raw)
        if column.kind == "boolean":
            lowered = value.strip().lower()
            return {"1": "true", "0": "false"}.get(lowered, lowered)
        if column.kind == "datetime" and value:
            parsed = parse_datetime(value)
            return format_datetime(parsed) if parsed else ""
        if column.kind == "reference" and column.ref and value and not _SYS_ID_RE.match(value):
            return self._lookup_reference(column.ref, value)
        return value

    def _lookup_reference(self, table_name: str, value: str) -> str:
        """A non-sys_id reference value is looked up by display value (and user_name)."""
        target = TABLES.get(table_name)
        if target is None:
            return value
        for record in self.tables[table_name].values():
            if record.get(target.display, "").casefold() == value.casefold():
                return record["sys_id"]
            if table_name == "sys_user" and record["user_name"].casefold() == value.casefold():
                return record["sys_id"]
        return value

    def insert(self, table_name: str, body: Mapping[str, Any], *, user_name: str) -> Record:
        """POST semantics: defaults, business rules, data policies, journal, outbound."""
        with self.lock:
            table = self.table(table_name)
            if not table.writable:
                raise _acl_denied("Insert")
            user = self.user(user_name)
            user_id = user["sys_id"] if user else user_name
            now = self.now()
            record = self._blank(table)
            record.update(
                {
                    "state": "1",
                    "impact": "3",
                    "urgency": "3",
                    "severity": "3",
                    "contact_type": "phone",
                    "category": "inquiry",
                    "active": "true",
                    "opened_by": user_id,
                    "opened_at": now,
                    "notify": "1",
                    "escalation": "0",
                    "reopen_count": "0",
                    "reassignment_count": "0",
                    "child_incidents": "0",
                    "made_sla": "true",
                    "knowledge": "false",
                    "approval": "not requested",
                    "upon_approval": "proceed",
                    "upon_reject": "cancel",
                    "sys_domain": "global",
                    "sys_domain_path": "/",
                }
            )
            journal, given = self._apply_body(table, record, body, insert=True)
            self._incident_rules(None, record, given, journal, user_id)
            sys_id = str(body.get("sys_id") or "")
            if not _SYS_ID_RE.match(sys_id) or sys_id in self.tables[table_name]:
                sys_id = self.new_sys_id()
            if not record["number"]:
                record["number"] = f"INC{self._next_number:07d}"
                self._next_number += 1
            record.update(
                {
                    "sys_id": sys_id,
                    "sys_created_on": now,
                    "sys_created_by": user_name,
                    "sys_updated_on": now,
                    "sys_updated_by": user_name,
                    "sys_mod_count": "0",
                    "sys_class_name": table_name,
                }
            )
            self.tables[table_name][sys_id] = record
            self._write_journal(table_name, record, journal, user_name, now)
            self._notify(table_name, record, "insert")
            return record

    def update(
        self, table_name: str, sys_id: str, body: Mapping[str, Any], *, user_name: str
    ) -> Record:
        """PATCH/PUT semantics (both partial); a no-op update changes nothing."""
        with self.lock:
            table = self.table(table_name)
            if not table.writable:
                raise _acl_denied("Update")
            old = self.get(table_name, sys_id)
            user = self.user(user_name)
            user_id = user["sys_id"] if user else user_name
            new = dict(old)
            journal, given = self._apply_body(table, new, body, insert=False)
            self._incident_rules(old, new, given, journal, user_id)
            if new == old and not journal:
                return old
            now = self.now()
            new["sys_updated_on"] = now
            new["sys_updated_by"] = user_name
            new["sys_mod_count"] = str(int(old["sys_mod_count"] or "0") + 1)
            self.tables[table_name][sys_id] = new
            self._write_journal(table_name, new, journal, user_name, now)
            self._notify(table_name, new, "update")
            return new

    def delete(self, table_name: str, sys_id: str) -> None:
        with self.lock:
            table = self.table(table_name)
            if not table.writable:
                raise _acl_denied("Delete")
            self.get(table_name, sys_id)
            del self.tables[table_name][sys_id]

    def add_comment(
        self, sys_id: str, text: str, *, user_name: str, work_note: bool = False
    ) -> Record:
        """Write a journal entry as ``user_name`` (a caller or agent replying)."""
        return self.update(
            "incident",
            sys_id,
            {"work_notes" if work_note else "comments": text},
            user_name=user_name,
        )

    def _apply_body(
        self, table: Table, record: Record, body: Mapping[str, Any], *, insert: bool
    ) -> tuple[list[tuple[str, str]], set[str]]:
        if not isinstance(body, Mapping):
            raise SNError(
                400, "Exception while reading request", "The payload is not a JSON object"
            )
        journal: list[tuple[str, str]] = []
        given: set[str] = set()
        for name, raw in body.items():
            column = table.columns.get(name)
            if column is None or name.startswith("sys_"):
                continue  # unknown and system fields are ignored
            if column.kind == "journal":
                if name != "comments_and_work_notes":
                    text = self._coerce(column, raw)
                    if text.strip():
                        journal.append((name, text))
                continue
            if name == "number" and not insert:
                continue
            record[name] = self._coerce(column, raw)
            given.add(name)
        return journal, given

    def _incident_rules(
        self,
        old: Record | None,
        new: Record,
        given: set[str],
        journal: list[tuple[str, str]],
        user_id: str,
    ) -> None:
        now = self.now()
        if "state" not in given and "incident_state" in given:
            new["state"] = new["incident_state"]
        old_state = old["state"] if old else ""
        # The caller answering while the incident waits for them puts it back to work.
        if (
            old is not None
            and "state" not in given
            and any(element == "comments" for element, _ in journal)
            and new["caller_id"]
            and new["caller_id"] == user_id
            and new["state"] == "3"
            and new["hold_reason"] == "1"
        ):
            new["state"] = "2"
        new["incident_state"] = new["state"]
        new["priority"] = priority_for(new["impact"], new["urgency"])
        state = new["state"]
        if state != "3":
            new["hold_reason"] = ""
        missing = []
        if state == "3" and not new["hold_reason"]:
            missing.append(INCIDENT.columns["hold_reason"].label)
        if state in ("6", "7"):
            for name in ("close_code", "close_notes"):
                if not new[name].strip():
                    missing.append(INCIDENT.columns[name].label)
        if missing:
            raise _data_policy(missing)
        if state == "6" and old_state != "6":
            new["resolved_at"] = now
            new["resolved_by"] = user_id
        if state == "7" and old_state != "7":
            new["closed_at"] = now
            new["closed_by"] = user_id
            if not new["resolved_at"]:
                new["resolved_at"] = now
                new["resolved_by"] = user_id
        if state in ("7", "8"):
            new["active"] = "false"
        else:
            new["active"] = "true"
        if old is not None and old_state in ("6", "7") and state in ("1", "2", "3"):
            new["resolved_at"] = new["resolved_by"] = ""
            new["closed_at"] = new["closed_by"] = ""
            new["reopen_count"] = str(int(new["reopen_count"] or "0") + 1)

    def _write_journal(
        self,
        table_name: str,
        record: Record,
        journal: list[tuple[str, str]],
        user_name: str,
        now: str,
    ) -> None:
        for element, text in journal:
            entry = self._insert_raw(
                "sys_journal_field",
                {
                    "element": element,
                    "element_id": record["sys_id"],
                    "name": table_name,
                    "value": text,
                    "sys_created_on": now,
                    "sys_created_by": user_name,
                },
                by=user_name,
            )
            self.journal_stored_at.append((entry["sys_id"], time.time()))

    def configure_outbound(
        self,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        enabled: bool | None = None,
        drop_rate: float | None = None,
    ) -> OutboundConfig:
        with self.lock:
            if url is not None:
                self.outbound.url = url or None
            if headers is not None:
                self.outbound.headers = {str(k): str(v) for k, v in headers.items()}
            if enabled is not None:
                self.outbound.enabled = enabled
            self.dispatcher.configure(drop_rate=drop_rate)
            return self.outbound

    def _notify(self, table_name: str, record: Record, operation: str) -> None:
        config = self.outbound
        if table_name != "incident" or not config.enabled or not config.url:
            return
        body = json.dumps(
            {
                "table": table_name,
                "sys_id": record["sys_id"],
                "number": record["number"],
                "sys_updated_on": record["sys_updated_on"],
                "sys_mod_count": record["sys_mod_count"],
                "operation": operation,
            }
        ).encode()
        self.dispatcher.submit(
            config.url, body, {"Content-Type": "application/json", **config.headers}
        )

    # -- dump -------------------------------------------------------------------------------------
    def snapshot(self) -> Json:
        with self.lock:
            return copy.deepcopy(
                {
                    "tables": {name: list(rows.values()) for name, rows in self.tables.items()},
                    "outbound": {**self.outbound.to_json(), **self.dispatcher.settings()},
                    "deliveries": [d.to_json() for d in self.dispatcher.records()],
                }
            )


def _sort_key(column: Column, value: str) -> Any:
    if column.kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value.casefold()
    if column.kind == "datetime":
        parsed = parse_datetime(value)
        return parsed if parsed is not None else value
    if column.kind == "boolean":
        return value.strip().lower() in ("true", "1")
    return value.casefold()


def _fold(column: Column, value: str) -> Any:
    return _sort_key(column, value) if value != "" else ""


# -- the app -----------------------------------------------------------------------------------------


def _sn_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False).encode("utf-8"),
        status_code=status,
        media_type=SN_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _error_renderer(status: int, body: Any) -> tuple[bytes, str]:
    if body is None:
        if status == 429:
            message, detail = "Rate limit exceeded", "Too many requests; retry later"
        elif status >= 500:
            message, detail = "Internal server error", "The instance could not process the request"
        else:
            message, detail = "Request failed", f"status {status}"
        body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return json.dumps(body).encode(), SN_MEDIA_TYPE


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").strip().lower() == "true"


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SNError(400, f"Invalid value for {name}: {raw}", "") from None


def _display_mode(request: Request) -> DisplayMode:
    raw = request.query_params.get("sysparm_display_value", "false").strip().lower()
    if raw == "true":
        return "true"
    if raw == "all":
        return "all"
    return "false"


def _fields(request: Request) -> list[str] | None:
    raw = request.query_params.get("sysparm_fields")
    if not raw:
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


def create_app(
    state: ServiceNowState | None = None, *, users: Mapping[str, str] | None = None
) -> FastAPI:
    """The ServiceNow simulator as an ASGI app (state at ``app.state.sandbox``).

    ``users`` maps user names to Basic-auth passwords; each gets a ``sys_user``
    row when it has none.
    """
    state = state or ServiceNowState()
    credentials = dict(users if users is not None else DEFAULT_USERS)
    with state.lock:
        for user_name in credentials:
            if state.user(user_name) is None:
                first, _, last = user_name.replace("_", ".").partition(".")
                state.add_user(user_name, first.title(), last.title())
    plan = FaultPlan()
    log = RequestLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.dispatcher.close()

    app = FastAPI(
        title="ServiceNow sandbox",
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

    @app.exception_handler(SNError)
    async def _sn_error(request: Request, exc: SNError) -> Response:
        headers = {"WWW-Authenticate": 'BASIC realm="Service-now"'} if exc.status == 401 else None
        return _sn_response(exc.body(), exc.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _sn_response(
                SNError(400, "Requested URI does not represent any resource", "").body(), 400
            )
        return _sn_response(SNError(exc.status_code, str(exc.detail), "").body(), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _sn_response(SNError(400, "Invalid request", str(exc)).body(), 400)

    def authorize(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise SNError(401, "User Not Authenticated", "Required to provide Auth information")
        try:
            user_name, sep, password = (
                base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            sep = password = user_name = ""
        expected = credentials.get(user_name)
        if (
            not sep
            or expected is None
            or not hmac.compare_digest(password.encode(), expected.encode())
        ):
            raise SNError(401, "User is not authenticated", "Required to provide Auth information")
        state.note_request_url(str(request.base_url))
        return user_name

    async def read_body(request: Request) -> Any:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise SNError(
                400, "Exception while reading request", "The payload is not valid JSON"
            ) from None

    def render_one(request: Request, table: Table, record: Record, user_name: str) -> Json:
        return state.render(
            table,
            record,
            fields=_fields(request),
            mode=_display_mode(request),
            exclude_links=_flag(request, "sysparm_exclude_reference_link"),
            user=state.user(user_name),
        )

    async def list_records(request: Request, table_name: str) -> Response:
        user_name = authorize(request)
        limit = max(1, _int_param(request, "sysparm_limit", _DEFAULT_LIMIT))
        offset = max(0, _int_param(request, "sysparm_offset", 0))
        with state.lock:
            table = state.table(table_name)
            if table_name in state.read_denied:
                raise _not_authorized()
            user = state.user(user_name)
            rows = state.query(table_name, request.query_params.get("sysparm_query"), user=user)
            page = rows[offset : offset + limit]  # the limit applies before the ACLs
            result = [
                render_one(request, table, r, user_name)
                for r in page
                if state.readable(table_name, r, user_name)
            ]
        headers: dict[str, str] = {}
        no_count = _flag(request, "sysparm_no_count")
        total = len(rows)
        if not no_count:
            headers["X-Total-Count"] = str(total)
        if not _flag(request, "sysparm_suppress_pagination_header"):
            url = request.url

            def link(at: int, rel: str) -> str:
                return f'<{url.include_query_params(sysparm_offset=at, sysparm_limit=limit)}>;rel="{rel}"'

            links = [link(0, "first")]
            if offset > 0:
                links.append(link(max(0, offset - limit), "prev"))
            has_next = offset + limit < total
            if has_next:
                links.append(link(offset + limit, "next"))
            if not no_count:
                last = max(0, ((total - 1) // limit) * limit) if total else 0
                links.append(link(last, "last"))
            headers["Link"] = ",".join(links)
        return _sn_response({"result": result}, headers=headers)

    async def get_record(request: Request, table_name: str, sys_id: str) -> Response:
        user_name = authorize(request)
        with state.lock:
            table = state.table(table_name)
            if table_name in state.read_denied:
                raise _not_authorized()
            record = state.get(table_name, sys_id)
            if not state.readable(table_name, record, user_name):
                raise _no_record()
            return _sn_response({"result": render_one(request, table, record, user_name)})

    async def create_record(request: Request, table_name: str) -> Response:
        user_name = authorize(request)
        body = await read_body(request)
        with state.lock:
            table = state.table(table_name)
            record = state.insert(table_name, body, user_name=user_name)
            location = state.link(table_name, record["sys_id"])
            if request.headers.get("x-no-response-body", "").strip().lower() == "true":
                return Response(status_code=201, headers={"Location": location})
            result = render_one(request, table, record, user_name)
        return _sn_response({"result": result}, 201, {"Location": location})

    async def update_record(request: Request, table_name: str, sys_id: str) -> Response:
        user_name = authorize(request)
        body = await read_body(request)
        with state.lock:
            table = state.table(table_name)
            record = state.update(table_name, sys_id, body, user_name=user_name)
            if request.headers.get("x-no-response-body", "").strip().lower() == "true":
                return Response(status_code=204)
            return _sn_response({"result": render_one(request, table, record, user_name)})

    async def delete_record(request: Request, table_name: str, sys_id: str) -> Response:
        authorize(request)
        state.delete(table_name, sys_id)
        return Response(status_code=204)

    for prefix in ("/api/now/table", "/api/now/v2/table"):
        app.add_api_route(f"{prefix}/{{table_name}}", list_records, methods=["GET"])
        app.add_api_route(f"{prefix}/{{table_name}}", create_record, methods=["POST"])
        app.add_api_route(f"{prefix}/{{table_name}}/{{sys_id}}", get_record, methods=["GET"])
        app.add_api_route(
            f"{prefix}/{{table_name}}/{{sys_id}}", update_record, methods=["PATCH", "PUT"]
        )
        app.add_api_route(f"{prefix}/{{table_name}}/{{sys_id}}", delete_record, methods=["DELETE"])

    # -- sandbox admin ------------------------------------------------------------------------------
    @app.post("/_sandbox/outbound")
    async def configure_outbound(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            url = body.get("url")
            headers = body.get("headers")
            enabled = body.get("enabled")
            drop_rate = body.get("drop_rate")
            if url is not None and not isinstance(url, str):
                raise ValueError("url must be a string")
            if headers is not None and not isinstance(headers, dict):
                raise ValueError("headers must be an object")
            if enabled is not None and not isinstance(enabled, bool):
                raise ValueError("enabled must be a boolean")
            if drop_rate is not None and (
                not isinstance(drop_rate, int | float) or isinstance(drop_rate, bool)
            ):
                raise ValueError("drop_rate must be a number")
            state.configure_outbound(
                url=url,
                headers=headers,
                enabled=enabled,
                drop_rate=float(drop_rate) if drop_rate is not None else None,
            )
        except (ValueError, TypeError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse({**state.outbound.to_json(), **state.dispatcher.settings()})

    @app.post("/_sandbox/acl")
    async def configure_acl(request: Request) -> Response:
        """A read ACL: ``{"user": ..., "table": "incident", "query": "<encoded>"|null}``."""
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            user, table, query = body.get("user"), body.get("table", "incident"), body.get("query")
            if not isinstance(user, str) or not isinstance(table, str):
                raise TypeError("user and table must be strings")
            if query is not None and not isinstance(query, str):
                raise TypeError("query must be an encoded query or null")
            state.restrict_reads(user, table, query)
        except (ValueError, TypeError, SNError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse({"user": user, "table": table, "query": query})

    @app.get("/_sandbox/outbound")
    async def outbound_settings() -> Response:
        return JSONResponse({**state.outbound.to_json(), **state.dispatcher.settings()})

    @app.get("/_sandbox/deliveries")
    async def deliveries() -> Response:
        return JSONResponse([d.to_json() for d in state.dispatcher.records()])

    @app.get("/_sandbox/state")
    async def dump_state() -> Response:
        return JSONResponse(state.snapshot())

    return app
