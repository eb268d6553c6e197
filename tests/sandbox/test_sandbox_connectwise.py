"""The ConnectWise PSA simulator: auth, tickets, conditions, paging, notes, callbacks."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ticketbridge.adapters.connectwise.simulator import (
    CW_MEDIA_TYPE,
    CW_PREFIX,
    ConnectWiseState,
    create_app,
)
from ticketbridge.clock import FakeClock

CLIENT_ID = "00000000-0000-0000-0000-000000000000"
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = {"Authorization": basic("msp+pub", "priv"), "clientId": CLIENT_ID}


@pytest.fixture
def state(clock: FakeClock) -> ConnectWiseState:
    return ConnectWiseState(clock=clock.now)


@pytest.fixture
def client(state: ConnectWiseState, make_client: Callable[..., httpx.Client]) -> httpx.Client:
    return make_client(create_app(state), base_url=f"http://testserver{CW_PREFIX}", headers=AUTH)


def new_ticket(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": "Printer offline",
        "company": {"identifier": "ACME"},
        "board": {"name": "Vendor Escalations"},
    }
    body.update(fields)
    resp = client.post("/service/tickets", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def links(resp: httpx.Response) -> dict[str, int]:
    """rel -> page number from a ConnectWise Link header."""
    out = {}
    for part in resp.headers.get("link", "").split(", "):
        m = re.match(r'<([^>]*)>; rel="(\w+)"', part)
        if m:
            page = httpx.URL(m.group(1)).params.get("page")
            out[m.group(2)] = int(page or 0)
    return out


# -- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"clientId": CLIENT_ID},
        {"Authorization": basic("msp+pub", "wrong"), "clientId": CLIENT_ID},
        {"Authorization": basic("other+pub", "priv"), "clientId": CLIENT_ID},
        {"Authorization": basic("msp+nope", "priv"), "clientId": CLIENT_ID},
        {"Authorization": basic("msp+pub", "priv")},
        {"Authorization": basic("msp+pub", "priv"), "clientId": "not-the-client"},
        {"Authorization": "Bearer abc", "clientId": CLIENT_ID},
    ],
)
def test_bad_credentials_or_client_id_get_401_with_cw_error_body(
    state: ConnectWiseState, make_client: Callable[..., httpx.Client], headers: dict[str, str]
) -> None:
    """Wrong Basic credentials, another company, or a missing/wrong clientId: 401, CW body."""
    resp = make_client(create_app(state)).get(f"{CW_PREFIX}/service/tickets", headers=headers)
    assert resp.status_code == 401
    body = resp.json()
    assert body["code"] == "Unauthorized"
    assert body["message"]


def test_good_credentials_answer_with_the_versioned_media_type(client: httpx.Client) -> None:
    """Company id is case-insensitive; JSON answers carry the vendor media type."""
    resp = client.get("/service/priorities", headers={"Authorization": basic("MSP+pub", "priv")})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == CW_MEDIA_TYPE


def test_unknown_endpoint_is_a_cw_404(client: httpx.Client) -> None:
    """Paths the API does not have answer 404 with ConnectWise's endpoint message."""
    resp = client.get("/service/nothing-here")
    assert resp.status_code == 404
    assert resp.json() == {"code": "ConnectWiseApi", "message": "The endpoint does not exist."}


# -- tickets ----------------------------------------------------------------------------


def test_create_ticket_fills_defaults_and_info(client: httpx.Client) -> None:
    """POST resolves references by name/identifier, defaults status and priority, stamps _info."""
    ticket = new_ticket(client, contact={"name": "Dana Whitfield"}, externalXRef="VX-1")
    assert ticket["id"] == 1001
    assert ticket["board"]["name"] == "Vendor Escalations"
    assert ticket["status"]["name"] == "New"
    assert ticket["priority"]["name"] == "Priority 3 - Normal Response"
    assert ticket["company"] == {
        "id": 1,
        "identifier": "ACME",
        "name": "Acme Dental Group",
        "_info": {"company_href": f"http://testserver{CW_PREFIX}/company/companies/1"},
    }
    assert ticket["contactEmailAddress"] == "dana.whitfield@acmedental.example"
    assert ticket["externalXRef"] == "VX-1"
    assert ticket["closedFlag"] is False
    info = ticket["_info"]
    assert info["lastUpdated"] == info["dateEntered"] == "2026-01-05T09:00:00Z"
    assert info["enteredBy"] == "TicketBridgeAPI"
    assert all(isinstance(v, str) for v in info.values())
    assert "initialDescription" not in ticket


def test_create_ticket_defaults_to_the_default_board(client: httpx.Client) -> None:
    """Without a board the ticket lands on the default board (Service Desk) in its New status."""
    resp = client.post("/service/tickets", json={"summary": "x", "company": {"id": 2}})
    assert resp.status_code == 201
    assert resp.json()["board"]["name"] == "Service Desk"
    assert resp.json()["status"]["name"] == "New"
    assert resp.json()["company"]["identifier"] == "GLOBEX"


def test_initial_description_becomes_a_discussion_note(client: httpx.Client) -> None:
    """initialDescription/InternalAnalysis are written as the ticket's first notes."""
    ticket = new_ticket(
        client, initialDescription="It smokes", initialInternalAnalysis="Check the fuser"
    )
    notes = client.get(f"/service/tickets/{ticket['id']}/notes").json()
    assert [(n["text"], n["detailDescriptionFlag"], n["internalAnalysisFlag"]) for n in notes] == [
        ("It smokes", True, False),
        ("Check the fuser", False, True),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"company": {"identifier": "ACME"}}, "summary"),
        ({"summary": "x"}, "company"),
        ({"summary": "x", "company": {"identifier": "NOPE"}}, "company"),
        ({"summary": "x", "company": "ACME"}, "company"),
        ({"summary": "x" * 101, "company": {"id": 1}}, "summary"),
        ({"summary": "x", "company": {"id": 1}, "status": {"name": "Nope"}}, "status"),
        ({"summary": "x", "company": {"id": 1}, "severity": "Huge"}, "severity"),
    ],
)
def test_invalid_ticket_is_rejected_field_by_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """Missing or unresolvable fields: 400 InvalidObject naming each bad field."""
    resp = client.post("/service/tickets", json=body)
    assert resp.status_code == 400
    payload = resp.json()
    assert payload["code"] == "InvalidObject"
    assert payload["message"] == "ticket object is invalid"
    assert field in [e["field"] for e in payload["errors"]]


def test_get_missing_ticket_is_404(client: httpx.Client) -> None:
    """A ticket id that does not exist: 404 NotFound."""
    resp = client.get("/service/tickets/424242")
    assert resp.status_code == 404
    assert resp.json()["code"] == "NotFound"


def test_patch_replaces_whole_references_and_bumps_last_updated(
    client: httpx.Client, clock: FakeClock
) -> None:
    """status/priority by id or name; closing sets closedFlag/closedDate; lastUpdated moves."""
    ticket = new_ticket(client)
    clock.advance(65)
    resp = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[
            {"op": "replace", "path": "status", "value": {"name": "Waiting on Vendor"}},
            {"op": "replace", "path": "priority", "value": {"id": 1}},
            {"op": "replace", "path": "externalXRef", "value": "INC0010001"},
        ],
    )
    assert resp.status_code == 200, resp.text
    patched = resp.json()
    assert patched["status"]["name"] == "Waiting on Vendor"
    assert patched["priority"]["name"] == "Priority 1 - Emergency Response"
    assert patched["externalXRef"] == "INC0010001"
    assert patched["_info"]["lastUpdated"] == "2026-01-05T09:01:05Z"
    assert patched["_info"]["dateEntered"] == "2026-01-05T09:00:00Z"
    clock.advance(5)
    closed = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "/status", "value": {"name": "Closed"}}],
    ).json()
    assert closed["closedFlag"] is True
    assert closed["closedDate"] == "2026-01-05T09:01:10Z"
    assert closed["closedBy"] == "TicketBridgeAPI"
    reopened = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "status", "value": {"name": "In Progress"}}],
    ).json()
    assert reopened["closedFlag"] is False
    assert "closedDate" not in reopened


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "replace", "path": "status/name", "value": "Closed"}],
        [{"op": "replace", "path": "status/id", "value": 5}],
        [{"op": "replace", "path": "Status", "value": {"id": 5}}],
        [{"op": "replace", "path": "noSuchField", "value": 1}],
        [{"op": "replace", "path": "status", "value": 5}],
        [{"op": "replace", "path": "status", "value": {"name": "Not a status"}}],
        [{"op": "remove", "path": "summary"}],
        [{"op": "move", "path": "summary", "value": "x"}],
        {"op": "replace", "path": "summary", "value": "x"},
        [],
    ],
)
def test_bad_patches_are_400(client: httpx.Client, ops: Any) -> None:
    """Sub-paths, wrong case, unknown fields, scalar references, bad ops, non-arrays: 400."""
    ticket = new_ticket(client)
    resp = client.patch(f"/service/tickets/{ticket['id']}", json=ops)
    assert resp.status_code == 400
    assert resp.json()["code"] == "InvalidObject"
    after = client.get(f"/service/tickets/{ticket['id']}").json()
    assert after["status"]["name"] == "New"
    assert after["summary"] == "Printer offline"


def test_patch_is_atomic(client: httpx.Client) -> None:
    """One bad op in the array: nothing of the array is applied."""
    ticket = new_ticket(client)
    resp = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[
            {"op": "replace", "path": "summary", "value": "Changed"},
            {"op": "replace", "path": "status/name", "value": "Closed"},
        ],
    )
    assert resp.status_code == 400
    assert client.get(f"/service/tickets/{ticket['id']}").json()["summary"] == "Printer offline"


def test_custom_fields_are_replaced_as_a_whole_array(client: httpx.Client) -> None:
    """customFields takes the whole array; entries left out lose their value."""
    ticket = new_ticket(client)
    fields = ticket["customFields"]
    assert [f["caption"] for f in fields] == ["Vendor Ticket #", "Vendor Name"]
    assert all("value" not in f for f in fields)
    fields[0]["value"] = "INC0010007"
    fields[1]["value"] = "ServiceNow"
    patched = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "customFields", "value": fields}],
    ).json()
    assert [f.get("value") for f in patched["customFields"]] == ["INC0010007", "ServiceNow"]
    only_first = [dict(fields[0], value="INC0010008")]
    patched = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "customFields", "value": only_first}],
    ).json()
    assert [f.get("value") for f in patched["customFields"]] == ["INC0010008", None]


def test_board_change_maps_status_by_name(client: httpx.Client) -> None:
    """Moving a ticket to another board keeps a same-named status, else the board's default."""
    ticket = new_ticket(client)
    client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "status", "value": {"name": "In Progress"}}],
    )
    moved = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "board", "value": {"name": "Service Desk"}}],
    ).json()
    assert moved["board"]["name"] == "Service Desk"
    assert moved["status"]["name"] == "In Progress"
    assert moved["status"]["id"] != ticket["status"]["id"]


def test_put_replaces_writable_fields(client: httpx.Client) -> None:
    """PUT takes a whole ticket: fields left out are cleared, id and dateEntered stay."""
    ticket = new_ticket(client, externalXRef="VX-9")
    resp = client.put(
        f"/service/tickets/{ticket['id']}",
        json={"summary": "Replaced", "company": {"id": 1}, "board": {"id": 1}},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == ticket["id"]
    assert body["summary"] == "Replaced"
    assert "externalXRef" not in body
    assert body["_info"]["dateEntered"] == ticket["_info"]["dateEntered"]


def test_delete_ticket(client: httpx.Client) -> None:
    """DELETE answers 204 and the ticket is gone."""
    ticket = new_ticket(client)
    assert client.delete(f"/service/tickets/{ticket['id']}").status_code == 204
    assert client.get(f"/service/tickets/{ticket['id']}").status_code == 404


# -- conditions, orderBy, fields -----------------------------------------------------------


@pytest.fixture
def three_tickets(client: httpx.Client, clock: FakeClock) -> list[dict[str, Any]]:
    """Two tickets in the same second (09:00:00), one at 09:00:01 on another board/company."""
    a = new_ticket(client, summary="Alpha printer", externalXRef="INC0010001")
    b = new_ticket(client, summary="Beta router")
    clock.advance(1)
    c = new_ticket(
        client,
        summary="Gamma printer",
        company={"identifier": "GLOBEX"},
        board={"name": "Service Desk"},
    )
    return [a, b, c]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ("lastUpdated >= [2026-01-05T09:00:00Z]", [0, 1, 2]),
        ("lastUpdated > [2026-01-05T09:00:00Z]", [2]),
        ("_info/lastUpdated = [2026-01-05T09:00:00Z]", [0, 1]),
        ("lastUpdated < [2026-01-05T09:00:01Z]", [0, 1]),
        ("lastUpdated >= [2026-01-05T09:00:01]", [2]),
        ('board/name = "Vendor Escalations"', [0, 1]),
        ("board/id = 2", [2]),
        ('status/name = "New"', [0, 1, 2]),
        ('company/identifier = "globex"', [2]),
        ('externalXRef = "INC0010001"', [0]),
        ('externalXRef != "INC0010001"', []),
        ("externalXRef = null", [1, 2]),
        ('summary like "%printer%"', [0, 2]),
        ('summary like "Alpha*"', [0]),
        ('summary contains "ROUTER"', [1]),
        ('summary not contains "printer"', [1]),
        ("id in (1001, 1003)", [0, 2]),
        ("id not in (1001)", [1, 2]),
        ('board/id = 1 and summary like "%printer%"', [0]),
        ('summary contains "beta" or company/identifier = "GLOBEX"', [1, 2]),
        ('(summary contains "beta" or summary contains "gamma") AND board/id = 1', [1]),
        ("closedFlag = false", [0, 1, 2]),
        ("", [0, 1, 2]),
    ],
)
def test_conditions_filter_tickets(
    client: httpx.Client, three_tickets: list[dict[str, Any]], conditions: str, expected: list[int]
) -> None:
    """The conditions grammar: comparisons, like/contains/in, and/or, parentheses, null."""
    resp = client.get("/service/tickets", params={"conditions": conditions})
    assert resp.status_code == 200, resp.text
    assert [t["id"] for t in resp.json()] == [three_tickets[i]["id"] for i in expected]
    count = client.get("/service/tickets/count", params={"conditions": conditions})
    assert count.json() == {"count": len(expected)}


@pytest.mark.parametrize(
    "conditions",
    [
        "lastUpdated > 2026-01-05",
        'lastUpdated > "2026-01-05T09:00:00Z"',
        "lastUpdated > [not a date]",
        "nosuchfield = 1",
        "summary = ",
        "summary = Alpha",
        'id = "abc"',
        '(summary = "x"',
        'summary = "x" and',
        'summary = "x" board/id = 1',
        "board/id like 1",
        "summary = 'x' ; drop",
    ],
)
def test_malformed_conditions_are_400(
    client: httpx.Client, three_tickets: list[dict[str, Any]], conditions: str
) -> None:
    """Bad dates, unknown fields, bare words, type mismatches, dangling syntax: 400."""
    resp = client.get("/service/tickets", params={"conditions": conditions})
    assert resp.status_code == 400
    assert resp.json()["code"] == "InvalidObject"


def test_order_by_last_updated_keeps_same_second_ties_in_id_order(
    client: httpx.Client, three_tickets: list[dict[str, Any]], clock: FakeClock
) -> None:
    """orderBy lastUpdated asc|desc; records sharing a second stay in id order."""
    clock.advance(10)
    client.patch(
        f"/service/tickets/{three_tickets[0]['id']}",
        json=[{"op": "replace", "path": "summary", "value": "Alpha again"}],
    )
    ids = [t["id"] for t in three_tickets]
    asc = client.get("/service/tickets", params={"orderBy": "lastUpdated asc"}).json()
    assert [t["id"] for t in asc] == [ids[1], ids[2], ids[0]]
    desc = client.get("/service/tickets", params={"orderBy": "lastUpdated desc, id asc"}).json()
    assert [t["id"] for t in desc] == [ids[0], ids[2], ids[1]]
    assert client.get("/service/tickets", params={"orderBy": "bogus asc"}).status_code == 400
    assert client.get("/service/tickets", params={"orderBy": "id sideways"}).status_code == 400


def test_fields_parameter_projects_the_answer(
    client: httpx.Client, three_tickets: list[dict[str, Any]]
) -> None:
    """fields=id,_info/lastUpdated returns only those (nested) fields."""
    resp = client.get(
        "/service/tickets", params={"fields": "id,_info/lastUpdated,board/name", "pageSize": 1}
    )
    assert resp.json() == [
        {
            "id": three_tickets[0]["id"],
            "_info": {"lastUpdated": "2026-01-05T09:00:00Z"},
            "board": {"name": "Vendor Escalations"},
        }
    ]


def test_search_endpoint_takes_conditions_in_the_body(
    client: httpx.Client, three_tickets: list[dict[str, Any]]
) -> None:
    """POST /service/tickets/search filters by body conditions, for long condition strings."""
    resp = client.post("/service/tickets/search", json={"conditions": 'summary like "%printer%"'})
    assert resp.status_code == 200
    assert [t["id"] for t in resp.json()] == [three_tickets[0]["id"], three_tickets[2]["id"]]
    assert client.post("/service/tickets/search", json={"conditions": "id ="}).status_code == 400


# -- paging ------------------------------------------------------------------------------------


def test_paging_and_link_header(client: httpx.Client, state: ConnectWiseState) -> None:
    """page/pageSize slice the list; Link has first/last always, prev/next only when they exist."""
    for n in range(7):
        state.create_ticket({"summary": f"T{n}", "company": {"id": 1}})
    first = client.get("/service/tickets", params={"pageSize": 3})
    assert [t["summary"] for t in first.json()] == ["T0", "T1", "T2"]
    assert links(first) == {"first": 1, "next": 2, "last": 3}
    middle = client.get("/service/tickets", params={"pageSize": 3, "page": 2})
    assert [t["summary"] for t in middle.json()] == ["T3", "T4", "T5"]
    assert links(middle) == {"first": 1, "prev": 1, "next": 3, "last": 3}
    last = client.get("/service/tickets", params={"pageSize": 3, "page": 3})
    assert [t["summary"] for t in last.json()] == ["T6"]
    assert links(last) == {"first": 1, "prev": 2, "last": 3}
    beyond = client.get("/service/tickets", params={"pageSize": 3, "page": 9})
    assert beyond.json() == []
    default = client.get("/service/tickets")
    assert len(default.json()) == 7
    assert links(default) == {"first": 1, "last": 1}
    assert "pageSize=25" in default.headers["link"]


def test_page_size_is_capped_at_1000(client: httpx.Client, state: ConnectWiseState) -> None:
    """pageSize above 1000 is served as 1000."""
    for n in range(1001):
        state.create_ticket({"summary": f"T{n}", "company": {"id": 1}})
    resp = client.get("/service/tickets", params={"pageSize": 5000, "fields": "id"})
    assert len(resp.json()) == 1000
    assert links(resp)["next"] == 2
    assert "pageSize=1000" in resp.headers["link"]


def test_forward_only_paging(client: httpx.Client, state: ConnectWiseState) -> None:
    """pagination-type: forward-only pages by pageId (id > pageId) and refuses orderBy."""
    for n in range(5):
        state.create_ticket({"summary": f"T{n}", "company": {"id": 1}})
    headers = {"pagination-type": "forward-only"}
    first = client.get("/service/tickets", params={"pageSize": 2}, headers=headers)
    assert [t["id"] for t in first.json()] == [1001, 1002]
    next_url = re.match(r'<([^>]*)>; rel="next"', first.headers["link"])
    assert next_url is not None
    assert httpx.URL(next_url.group(1)).params["pageId"] == "1002"
    second = client.get("/service/tickets", params={"pageSize": 2, "pageId": 1002}, headers=headers)
    assert [t["id"] for t in second.json()] == [1003, 1004]
    ordered = client.get("/service/tickets", params={"orderBy": "id desc"}, headers=headers)
    assert ordered.status_code == 400


# -- notes -----------------------------------------------------------------------------------------


def test_add_note_answers_service_note_and_bumps_ticket(
    client: httpx.Client, clock: FakeClock
) -> None:
    """A note gets id, ticketId, dateCreated, createdBy, member, flags; the ticket's lastUpdated moves."""
    ticket = new_ticket(client)
    clock.advance(30)
    resp = client.post(
        f"/service/tickets/{ticket['id']}/notes",
        json={"text": "Vendor says tomorrow", "internalAnalysisFlag": True},
    )
    assert resp.status_code == 201
    note = resp.json()
    assert note["ticketId"] == ticket["id"]
    assert note["text"] == "Vendor says tomorrow"
    assert note["internalAnalysisFlag"] is True
    assert note["detailDescriptionFlag"] is False
    assert note["internalFlag"] is True
    assert note["externalFlag"] is False
    assert note["createdBy"] == "TicketBridgeAPI"
    assert note["member"]["identifier"] == "TicketBridgeAPI"
    assert note["dateCreated"] == "2026-01-05T09:00:30Z"
    assert TS_RE.match(note["_info"]["lastUpdated"])
    after = client.get(f"/service/tickets/{ticket['id']}").json()
    assert after["_info"]["lastUpdated"] == "2026-01-05T09:00:30Z"
    one = client.get(f"/service/tickets/{ticket['id']}/notes/{note['id']}")
    assert one.json()["id"] == note["id"]


def test_note_flags_are_independent(client: httpx.Client) -> None:
    """Discussion+Resolution is allowed and external; Internal+Resolution stays internal."""
    ticket = new_ticket(client)
    public = client.post(
        f"/service/tickets/{ticket['id']}/notes",
        json={"text": "Fixed", "detailDescriptionFlag": True, "resolutionFlag": True},
    ).json()
    assert (public["externalFlag"], public["internalFlag"], public["resolutionFlag"]) == (
        True,
        False,
        True,
    )
    internal = client.post(
        f"/service/tickets/{ticket['id']}/notes",
        json={"text": "Root cause", "internalAnalysisFlag": True, "resolutionFlag": True},
    ).json()
    assert (internal["externalFlag"], internal["internalFlag"]) == (False, True)


@pytest.mark.parametrize(
    "body",
    [
        {"detailDescriptionFlag": True},
        {"text": "   ", "detailDescriptionFlag": True},
        {"text": "no flag"},
        {"text": "x", "detailDescriptionFlag": "yes"},
    ],
)
def test_invalid_notes_are_400(client: httpx.Client, body: dict[str, Any]) -> None:
    """A note needs text and at least one of the three flags (booleans)."""
    ticket = new_ticket(client)
    resp = client.post(f"/service/tickets/{ticket['id']}/notes", json=body)
    assert resp.status_code == 400
    assert resp.json()["message"] == "serviceNote object is invalid"


def test_notes_list_filters_counts_and_pages(client: httpx.Client, clock: FakeClock) -> None:
    """Notes take conditions on _info/lastUpdated, orderBy, paging and count like tickets."""
    ticket = new_ticket(client)
    url = f"/service/tickets/{ticket['id']}/notes"
    for n in range(3):
        client.post(url, json={"text": f"n{n}", "detailDescriptionFlag": True})
        clock.advance(1)
    since = client.get(url, params={"conditions": "_info/lastUpdated >= [2026-01-05T09:00:01Z]"})
    assert [n["text"] for n in since.json()] == ["n1", "n2"]
    desc = client.get(url, params={"orderBy": "id desc", "pageSize": 2})
    assert [n["text"] for n in desc.json()] == ["n2", "n1"]
    assert links(desc) == {"first": 1, "next": 2, "last": 2}
    assert client.get(f"{url}/count").json() == {"count": 3}
    assert client.get(f"{url}/99999").status_code == 404
    assert client.get("/service/tickets/99999/notes").status_code == 404


def test_sandbox_member_header_acts_as_a_technician(client: httpx.Client) -> None:
    """X-Sandbox-Member attributes writes to that member (createdBy, updatedBy)."""
    ticket = new_ticket(client)
    note = client.post(
        f"/service/tickets/{ticket['id']}/notes",
        json={"text": "On it", "detailDescriptionFlag": True},
        headers={"X-Sandbox-Member": "jsmith"},
    ).json()
    assert note["createdBy"] == "jsmith"
    assert note["member"]["name"] == "John Smith"
    after = client.get(f"/service/tickets/{ticket['id']}").json()
    assert after["_info"]["updatedBy"] == "jsmith"
    unknown = client.get("/service/tickets", headers={"X-Sandbox-Member": "nobody"})
    assert unknown.status_code == 400


def test_contact_note_from_state_helper(client: httpx.Client, state: ConnectWiseState) -> None:
    """state.add_note(contact_id=...) writes a customer reply carrying the contact, no member."""
    ticket = new_ticket(client)
    note = state.add_note(
        ticket["id"], {"text": "Any news?", "detailDescriptionFlag": True}, contact_id=1
    )
    assert note["contact"]["name"] == "Dana Whitfield"
    assert "member" not in note


# -- reference data ---------------------------------------------------------------------------------


def test_priorities_boards_and_statuses(client: httpx.Client) -> None:
    """Priorities, boards and per-board statuses are listed and filterable by name."""
    priorities = client.get("/service/priorities").json()
    assert [p["name"] for p in priorities] == [
        "Priority 1 - Emergency Response",
        "Priority 2 - Quick Response",
        "Priority 3 - Normal Response",
        "Priority 4 - Low",
    ]
    assert priorities[0]["id"] == 1
    boards = client.get("/service/boards", params={"conditions": 'name="Vendor Escalations"'})
    assert [b["id"] for b in boards.json()] == [1]
    statuses = client.get("/service/boards/1/statuses").json()
    assert [s["name"] for s in statuses] == [
        "New",
        "In Progress",
        "Waiting on Vendor",
        "Vendor Resolved - Verify with Client",
        "Closed",
    ]
    assert [s["closedStatus"] for s in statuses] == [False, False, False, False, True]
    closed = client.get("/service/boards/1/statuses", params={"conditions": 'name="Closed"'})
    assert [s["id"] for s in closed.json()] == [statuses[-1]["id"]]
    assert client.get("/service/boards/77/statuses").status_code == 404


def test_companies_contacts_members(client: httpx.Client) -> None:
    """Companies, contacts and members answer with conditions on their identifiers."""
    acme = client.get("/company/companies", params={"conditions": 'identifier="ACME"'}).json()
    assert [c["name"] for c in acme] == ["Acme Dental Group"]
    contacts = client.get("/company/contacts", params={"conditions": "company/id=1"}).json()
    assert [c["firstName"] for c in contacts] == ["Dana", "Priya"]
    members = client.get("/system/members", params={"conditions": 'identifier="adavis"'}).json()
    assert [m["firstName"] + " " + m["lastName"] for m in members] == ["Alex Davis"]


# -- callbacks ----------------------------------------------------------------------------------------


def test_callback_registration_lifecycle(client: httpx.Client) -> None:
    """POST 201 (owner level objectId becomes 1), duplicates refused, GET list/one, DELETE."""
    body = {
        "url": "http://127.0.0.1:9/webhooks/cw?recordId=",
        "objectId": 0,
        "type": "Ticket",
        "level": "Owner",
        "description": "ticketbridge",
    }
    resp = client.post("/system/callbacks", json=body)
    assert resp.status_code == 201
    callback = resp.json()
    assert callback["objectId"] == 1
    assert callback["memberId"] == 3
    assert callback["inactiveFlag"] is False
    assert re.fullmatch(r"[0-9a-f-]{36}", callback["connectWiseID"])
    duplicate = client.post("/system/callbacks", json=body)
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["code"] == "ObjectExists"
    assert [c["id"] for c in client.get("/system/callbacks").json()] == [callback["id"]]
    assert client.get(f"/system/callbacks/{callback['id']}").json()["url"] == body["url"]
    assert client.delete(f"/system/callbacks/{callback['id']}").status_code == 204
    assert client.get(f"/system/callbacks/{callback['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "not a url", "objectId": 1, "type": "ticket", "level": "owner"}, "url"),
        ({"url": "http://x/", "objectId": 1, "type": "ticket", "level": "galaxy"}, "level"),
        ({"url": "http://x/", "objectId": 1, "type": "spaceship", "level": "owner"}, "type"),
        ({"url": "http://x/", "type": "ticket", "level": "owner"}, "objectId"),
    ],
)
def test_invalid_callbacks_are_400(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    """Bad URL, unknown type or level, missing objectId: 400 naming the field."""
    resp = client.post("/system/callbacks", json=body)
    assert resp.status_code == 400
    assert field in [e["field"] for e in resp.json()["errors"]]


def test_signing_key_and_state_dump(client: httpx.Client, state: ConnectWiseState) -> None:
    """The signing key URL needs no auth; /_sandbox/state dumps tickets and notes."""
    new_ticket(client, initialDescription="hello")
    key = client.get(f"http://testserver/_sandbox/callbacks/signing-key/{state.current_key_id}")
    assert key.status_code == 200
    assert key.json() == {"signing_key": state.signing_keys[state.current_key_id]}
    assert client.get("http://testserver/_sandbox/callbacks/signing-key/nope").status_code == 404
    dump = client.get("http://testserver/_sandbox/state").json()
    assert [t["summary"] for t in dump["tickets"]] == ["Printer offline"]
    assert [n["text"] for n in dump["notes"]] == ["hello"]
    assert {b["name"] for b in dump["boards"]} == {"Vendor Escalations", "Service Desk"}


# -- time entries and allNotes ---------------------------------------------------------------
def test_time_entries_show_among_all_notes_with_their_flags_and_own_ids(
    client: httpx.Client,
) -> None:
    """A time entry charged to a service ticket shows in /allNotes (noteType TimeEntryNote,
    its addTo... flags as the note's flags), not in /notes; its id is its own series; it bumps
    the ticket; allNotes takes conditions and pages like any list."""
    ticket = new_ticket(client, initialDescription="It will not print.")
    tid = ticket["id"]
    before = client.get(f"/service/tickets/{tid}").json()["_info"]["lastUpdated"]
    body = {
        "chargeToType": "ServiceTicket",
        "chargeToId": tid,
        "member": {"identifier": "jsmith"},
        "timeStart": "2026-01-05T09:00:00Z",
        "timeEnd": "2026-01-05T09:30:00Z",
        "notes": "Replaced the fuser.",
        "addToDetailDescriptionFlag": True,
    }
    created = client.post("/time/entries", json=body)
    assert 201 == created.status_code, created.text
    entry = created.json()
    internal = client.post(
        "/time/entries",
        json={
            **body,
            "notes": "Billing note.",
            "addToDetailDescriptionFlag": False,
            "addToInternalAnalysisFlag": True,
        },
    ).json()
    notes = client.get(f"/service/tickets/{tid}/notes").json()
    everything = client.get(f"/service/tickets/{tid}/allNotes", params={"orderBy": "id asc"})
    kinds = [(n["noteType"], n["id"], n["detailDescriptionFlag"]) for n in everything.json()]
    assert ["It will not print."] == [n["text"] for n in notes]
    assert [
        ("TicketNote", notes[0]["id"], True),
        ("TimeEntryNote", entry["id"], True),
        ("TimeEntryNote", internal["id"], False),
    ] == kinds
    assert notes[0]["id"] == entry["id"], "time entries are numbered apart from notes"
    only = client.get(
        f"/service/tickets/{tid}/allNotes",
        params={"conditions": 'noteType = "TimeEntryNote" and internalAnalysisFlag = true'},
    ).json()
    assert ["Billing note."] == [n["text"] for n in only]
    paged = client.get(f"/service/tickets/{tid}/allNotes", params={"page": 2, "pageSize": 2})
    assert (1, 2) == (len(paged.json()), links(paged)["last"])
    after = client.get(f"/service/tickets/{tid}").json()["_info"]["lastUpdated"]
    assert after >= before


def test_a_time_entry_needs_a_charge_and_a_start(client: httpx.Client) -> None:
    """chargeToType/chargeToId and timeStart are required; an unknown ticket is refused."""
    bad = client.post("/time/entries", json={"chargeToType": "ServiceTicket", "chargeToId": 99})
    assert 400 == bad.status_code
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"chargeToId", "timeStart"} <= fields
