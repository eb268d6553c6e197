"""ServiceNow test data: JSON shaped like the Table API's answers (actual values, as strings)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings

BASE_URL = "https://acme.service-now.com"
TABLE = "/api/now/table/incident"
JOURNAL = "/api/now/table/sys_journal_field"
FAST = RetrySettings(attempts=2, wait_min=0, wait_max=0, max_wait=0)
USERNAME = "ticketbridge.integration"
PASSWORD = "pa55word"
TOKEN = "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
SYS_ID = "ef43c6d40a0a0b5700c77f9bf387afe3"
OTHER_SYS_ID = "9d385017c611228701d22104cc95c371"
COMPANY = "31bea3d53790200044e0bfc8bcbe5dec"
ASSIGNEE = "681b365ec0a80164000fb0b05854a0cd"


def settings(**overrides: Any) -> ServiceNowSettings:
    values: dict[str, Any] = {
        "username": USERNAME,
        "password": PASSWORD,
        "webhook_token": TOKEN,
        "page_size": 2,
    }
    values.update(overrides)
    return ServiceNowSettings(**values)


def adapter(
    *, base_url: str = BASE_URL, retry: RetrySettings = FAST, **overrides: Any
) -> ServiceNowAdapter:
    return ServiceNowAdapter(
        AdapterContext(name="sn", base_url=base_url, retry=retry), settings(**overrides)
    )


def respond(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(payload).encode(),
        headers={"content-type": "application/json;charset=UTF-8", **headers},
    )


def result(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    """The Table API's envelope: ``{"result": ...}``."""
    return respond({"result": payload}, status, **headers)


def link_header(path: str, *, offset: int, limit: int, total: int) -> str:
    """The ``Link`` header the Table API sends on list pages."""
    url = f"{BASE_URL}{path}"
    links = [f'<{url}?sysparm_limit={limit}&sysparm_offset=0>;rel="first"']
    if offset > 0:
        links.append(f'<{url}?sysparm_limit={limit}&sysparm_offset={offset - limit}>;rel="prev"')
    if offset + limit < total:
        links.append(f'<{url}?sysparm_limit={limit}&sysparm_offset={offset + limit}>;rel="next"')
    last = max(0, (total - 1) // limit * limit)
    links.append(f'<{url}?sysparm_limit={limit}&sysparm_offset={last}>;rel="last"')
    return ",".join(links)


def sys_id(n: int) -> str:
    return f"{n:032x}"


def incident(sys_id: str = SYS_ID, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sys_id": sys_id,
        "number": "INC0010002",
        "short_description": "Unable to connect to office wifi",
        "description": "Since this morning the laptop drops off the network.",
        "state": "2",
        "hold_reason": "",
        "priority": "3",
        "impact": "2",
        "urgency": "2",
        "company": COMPANY,
        "assigned_to": ASSIGNEE,
        "correlation_id": "0123456789abcdef",
        "sys_created_on": "2025-03-01 09:00:00",
        "sys_updated_on": "2025-03-01 10:00:00",
        "sys_mod_count": "4",
    }
    body.update(overrides)
    return body


def change_row(sys_id: str, updated: str) -> dict[str, Any]:
    return {"sys_id": sys_id, "sys_updated_on": updated}


def journal(
    entry_id: str,
    value: str,
    *,
    element: str = "comments",
    created: str = "2025-03-01 09:30:00",
    by: str = "beth.anglin",
    element_id: str = SYS_ID,
) -> dict[str, Any]:
    return {
        "sys_id": entry_id,
        "element": element,
        "element_id": element_id,
        "value": value,
        "sys_created_on": created,
        "sys_created_by": by,
    }


def echo_write(request: httpx.Request, *, sys_id: str = SYS_ID, **kept: str) -> httpx.Response:
    """A write's answer as the Table API gives it: the fields asked for (``sysparm_fields``),
    holding what the request wrote unless ``kept`` says the instance kept another value
    (a field ACL drops a field silently).  Journal fields read as empty strings."""
    body = json.loads(request.content or b"{}")
    asked = request.url.params.get("sysparm_fields", "sys_id").split(",")
    record: dict[str, Any] = {"sys_id": sys_id, "sys_mod_count": "5"}
    record["sys_updated_on"] = "2024-05-01 10:00:00"
    record.update({k: ("" if k in ("comments", "work_notes") else v) for k, v in body.items()})
    record.update(kept)
    status = 201 if request.method == "POST" else 200
    return result({name: record.get(name, "") for name in asked}, status)
