"""ConnectWise PSA test data: JSON shaped like the Manage REST API 3.0 (2025.1) answers."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx

from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.connectwise.adapter import (
    ACCEPT,
    ConnectWiseAdapter,
    ConnectWiseSettings,
)
from ticketbridge.adapters.kit.http import RetrySettings

BASE_URL = "https://api-na.myconnectwise.net/v4_6_release/apis/3.0"
MEDIA_TYPE = ACCEPT
FAST = RetrySettings(attempts=2, wait_min=0, wait_max=0, max_wait=0)
COMPANY_ID = "acmemsp"
PUBLIC_KEY = "pub1234"
PRIVATE_KEY = "priv5678"
CLIENT_ID = "3f6c1d2e-0000-4000-8000-000000000001"
KEY_URL = "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/system/callbackkeys/ab12cd34"


def settings(**overrides: Any) -> ConnectWiseSettings:
    values: dict[str, Any] = {
        "company_id": COMPANY_ID,
        "public_key": PUBLIC_KEY,
        "private_key": PRIVATE_KEY,
        "client_id": CLIENT_ID,
        "page_size": 2,
    }
    values.update(overrides)
    return ConnectWiseSettings(**values)


def adapter(
    *,
    base_url: str = BASE_URL,
    retry: RetrySettings = FAST,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> ConnectWiseAdapter:
    ctx = AdapterContext(
        name="cw", base_url=base_url, retry=retry, webhook_transport=webhook_transport
    )
    return ConnectWiseAdapter(ctx, settings(**overrides))


def respond(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    """A ConnectWise answer: JSON under the versioned vendor media type."""
    return httpx.Response(
        status,
        content=json.dumps(payload).encode(),
        headers={"content-type": MEDIA_TYPE, **headers},
    )


def link_header(path: str, *, page: int, size: int, next_page: bool, last: int) -> str:
    """The ``Link`` header ConnectWise sends on list pages (``next`` only if there is one)."""
    url = f"{BASE_URL}{path}"
    links = [f'<{url}?page=1&pageSize={size}>; rel="first"']
    if page > 1:
        links.append(f'<{url}?page={page - 1}&pageSize={size}>; rel="prev"')
    if next_page:
        links.append(f'<{url}?page={page + 1}&pageSize={size}>; rel="next"')
    links.append(f'<{url}?page={last}&pageSize={size}>; rel="last"')
    return ", ".join(links)


def info(last_updated: str, date_entered: str = "2025-03-01T08:00:00Z") -> dict[str, str]:
    return {
        "lastUpdated": last_updated,
        "updatedBy": "jsmith",
        "dateEntered": date_entered,
        "enteredBy": "jsmith",
    }


def ticket(ticket_id: int = 4711, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ticket_id,
        "summary": "Printer offline on floor 2",
        "recordType": "ServiceTicket",
        "board": {"id": 1, "name": "Service Desk", "_info": {"board_href": "..."}},
        "status": {"id": 16, "name": "New", "sort": 1, "_info": {"status_href": "..."}},
        "company": {"id": 250, "identifier": "AcmeCo", "name": "Acme Co Ltd", "_info": {}},
        "contact": {"id": 55, "name": "Jane Doe", "_info": {}},
        "contactName": "Jane Doe",
        "contactPhoneNumber": "5551234567",
        "contactEmailAddress": "jane.doe@acme.example",
        "type": {"id": 3, "name": "Hardware", "_info": {}},
        "owner": {"id": 148, "identifier": "jsmith", "name": "John Smith", "_info": {}},
        "priority": {"id": 8, "name": "Priority 3 - Normal Response", "sort": 6, "level": "Medium"},
        "severity": "Medium",
        "impact": "Medium",
        "externalXRef": "",
        "closedFlag": False,
        "customerUpdatedFlag": False,
        "customFields": [
            {
                "id": 7,
                "caption": "Vendor Ticket",
                "type": "Text",
                "entryMethod": "EntryField",
                "numberOfDecimals": 0,
                "value": None,
            },
            {
                "id": 9,
                "caption": "Site Visit",
                "type": "Checkbox",
                "entryMethod": "EntryField",
                "numberOfDecimals": 0,
                "value": False,
            },
        ],
        "_info": info("2025-03-01T10:00:00Z", "2025-03-01T09:00:00Z"),
    }
    body.update(overrides)
    return body


def summary_row(ticket_id: int, last_updated: str) -> dict[str, Any]:
    """A ticket as it appears in a list page (the full record; only id and _info matter)."""
    return ticket(ticket_id, _info=info(last_updated))


def note(
    note_id: int,
    text: str = "Checked the spooler.",
    *,
    discussion: bool = False,
    internal: bool = False,
    resolution: bool = False,
    created: str = "2025-03-01T09:30:00Z",
    ticket_id: int = 4711,
    member: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": note_id,
        "ticketId": ticket_id,
        "text": text,
        "detailDescriptionFlag": discussion,
        "internalAnalysisFlag": internal,
        "resolutionFlag": resolution,
        "issueFlag": False,
        "member": member
        if member is not None
        else {"id": 148, "identifier": "jsmith", "name": "John Smith", "_info": {}},
        "dateCreated": created,
        "createdBy": "jsmith",
        "internalFlag": internal,
        "externalFlag": discussion,
        "_info": {"lastUpdated": created, "updatedBy": "jsmith"},
    }
    body.update(overrides)
    return body


def priority(priority_id: int, name: str) -> dict[str, Any]:
    return {
        "id": priority_id,
        "name": name,
        "color": "Orange",
        "sortOrder": priority_id,
        "defaultFlag": False,
        "level": "High",
        "_info": {"lastUpdated": "2024-01-01T00:00:00Z"},
    }


def board_status(status_id: int, name: str, *, inactive: bool = False) -> dict[str, Any]:
    return {
        "id": status_id,
        "name": name,
        "board": {"id": 1, "name": "Service Desk"},
        "sortOrder": status_id,
        "displayOnBoard": True,
        "inactive": inactive,
        "closedStatus": False,
        "defaultFlag": False,
        "_info": {"lastUpdated": "2024-01-01T00:00:00Z"},
    }


def callback(ticket_id: int | str | None = 4711, **overrides: Any) -> dict[str, Any]:
    """A ConnectWise callback body (payload version 2 field names)."""
    body: dict[str, Any] = {
        "MessageId": "9b1c0a9e-5b0e-4c59-9f43-2d8c0e3f4a11",
        "FromUrl": "api-na.myconnectwise.net",
        "CompanyId": COMPANY_ID,
        "MemberId": "jsmith",
        "Action": "updated",
        "Type": "Ticket",
        "ID": ticket_id,
        "ProductInstanceId": "",
        "PartnerId": "",
        "Entity": json.dumps({"id": ticket_id, "summary": "Printer offline on floor 2"}),
        "Metadata": {"key_url": KEY_URL},
        "CallbackObjectRecId": 12,
    }
    if ticket_id is None:
        del body["ID"]
    body.update(overrides)
    return body


def patched(request: httpx.Request, before: dict[str, Any] | None = None) -> httpx.Response:
    """The answer to a ticket PATCH: ``before`` (the sample ticket) with the operations
    applied, as ConnectWise answers with the whole updated ticket."""
    updated = copy.deepcopy(before if before is not None else ticket())
    for op in json.loads(request.content):
        updated[op["path"]] = op["value"]
    return respond(updated)
