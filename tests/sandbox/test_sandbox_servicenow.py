"""The ServiceNow Table API simulator: auth, incidents, encoded queries, paging, journal, rules."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ticketbridge.adapters.servicenow.simulator import (
    SN_MEDIA_TYPE,
    ServiceNowState,
    create_app,
    parse_encoded_query,
    priority_for,
)
from ticketbridge.clock import FakeClock

SYS_ID_RE = re.compile(r"^[0-9a-f]{32}$")
DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
INTEGRATION = ("ticketbridge.integration", "integration-pass")
AGENT = ("beth.anglin", "agent-pass")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def state(clock: FakeClock) -> ServiceNowState:
    return ServiceNowState(clock=clock.now)


@pytest.fixture
def client(state: ServiceNowState, make_client: Callable[..., httpx.Client]) -> httpx.Client:
    return make_client(
        create_app(state), base_url="http://testserver/api/now", headers=basic(*INTEGRATION)
    )


@pytest.fixture
def agent(state: ServiceNowState, client: httpx.Client) -> httpx.Client:
    """The same instance, authenticated as Beth Anglin (an agent)."""
    return httpx.Client(
        transport=client._transport, base_url=client.base_url, headers=basic(*AGENT)
    )


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"short_description": "VPN down"}
    body.update(fields)
    resp = client.post(
        "/table/incident", json=body, params={"sysparm_exclude_reference_link": "true"}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["result"]  # type: ignore[no-any-return]


def numbers(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["number"] for r in resp.json()["result"]]


def sn_links(resp: httpx.Response) -> dict[str, int]:
    out = {}
    for part in resp.headers.get("link", "").split(","):
        m = re.match(r'<([^>]*)>;rel="(\w+)"', part)
        if m:
            out[m.group(2)] = int(httpx.URL(m.group(1)).params["sysparm_offset"])
    return out


def user_id(state: ServiceNowState, name: str) -> str:
    user = state.user(name)
    assert user is not None
    return user["sys_id"]


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "User Not Authenticated"),
        (basic("ticketbridge.integration", "wrong"), "User is not authenticated"),
        (basic("nobody", "integration-pass"), "User is not authenticated"),
        ({"Authorization": "Basic !!!"}, "User is not authenticated"),
    ],
)
def test_unauthenticated_requests_get_401_with_sn_error_body(
    state: ServiceNowState,
    make_client: Callable[..., httpx.Client],
    headers: dict[str, str],
    message: str,
) -> None:
    """Missing or wrong Basic credentials: 401, ServiceNow's error body, status failure."""
    resp = make_client(create_app(state)).get("/api/now/table/incident", headers=headers)
    assert resp.status_code == 401
    body = resp.json()
    assert body["status"] == "failure"
    assert body["error"]["message"] == message
    assert resp.headers["www-authenticate"].startswith("BASIC")


def test_custom_users_get_a_sys_user_row(make_client: Callable[..., httpx.Client]) -> None:
    """create_app(users=...) replaces the credentials and adds missing sys_user rows."""
    state = ServiceNowState()
    c = make_client(create_app(state, users={"svc.bridge": "s3cret"}))
    assert (
        c.get("/api/now/table/incident", headers=basic("svc.bridge", "s3cret")).status_code == 200
    )
    assert c.get("/api/now/table/incident", headers=basic(*AGENT)).status_code == 401
    assert state.user("svc.bridge") is not None


# -- create / read -------------------------------------------------------------------------------


def test_create_incident_numbers_defaults_and_location(
    client: httpx.Client, state: ServiceNowState
) -> None:
    """POST: 201, INC0010001.., 32-hex sys_id, string values, defaults, Location header."""
    resp = client.post(
        "/table/incident",
        json={"short_description": "VPN down", "company": "Acme Dental Group", "urgency": 2},
    )
    assert resp.status_code == 201
    assert resp.headers["content-type"] == SN_MEDIA_TYPE
    inc = resp.json()["result"]
    assert SYS_ID_RE.match(inc["sys_id"])
    assert resp.headers["location"].endswith(f"/api/now/table/incident/{inc['sys_id']}")
    assert inc["number"] == "INC0010001"
    assert (inc["state"], inc["impact"], inc["urgency"], inc["priority"]) == ("1", "3", "2", "4")
    assert inc["sys_mod_count"] == "0"
    assert (
        inc["sys_created_on"] == inc["sys_updated_on"] == inc["opened_at"] == "2026-01-05 09:00:00"
    )
    assert inc["sys_created_by"] == "ticketbridge.integration"
    assert inc["active"] == "true"
    assert inc["comments"] == inc["work_notes"] == ""
    assert (
        inc["company"]["value"] == state.tables["core_company"][inc["company"]["value"]]["sys_id"]
    )
    assert inc["company"]["link"].endswith(f"/api/now/table/core_company/{inc['company']['value']}")
    assert inc["opened_by"]["value"] == user_id(state, "ticketbridge.integration")
    assert inc["caller_id"] == ""
    assert create(client)["number"] == "INC0010002"


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        ("1", "1", "1"),
        ("1", "2", "2"),
        ("2", "1", "2"),
        ("1", "3", "3"),
        ("2", "2", "3"),
        ("3", "1", "3"),
        ("2", "3", "4"),
        ("3", "2", "4"),
        ("3", "3", "5"),
    ],
)
def test_priority_is_computed_from_impact_and_urgency(
    client: httpx.Client, impact: str, urgency: str, priority: str
) -> None:
    """priority follows the default lookup; a priority written directly is overridden."""
    inc = create(client, impact=impact, urgency=urgency, priority="1")
    assert inc["priority"] == priority
    assert priority_for(impact, urgency) == priority


def test_get_record_and_errors(client: httpx.Client) -> None:
    """GET one record; unknown sys_id 404 'No Record found'; unknown table 400."""
    inc = create(client)
    one = client.get(f"/table/incident/{inc['sys_id']}")
    assert one.json()["result"]["number"] == inc["number"]
    missing = client.get("/table/incident/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No Record found"
    bad_table = client.get("/table/not_a_table")
    assert bad_table.status_code == 400
    assert bad_table.json()["error"]["message"] == "Invalid table not_a_table"
    versioned = client.get(f"/v2/table/incident/{inc['sys_id']}")
    assert versioned.status_code == 200


def test_fields_and_reference_links(client: httpx.Client, state: ServiceNowState) -> None:
    """sysparm_fields selects (and dot-walks); references carry links unless excluded."""
    caller = user_id(state, "abel.tuter")
    inc = create(client, caller_id=caller)
    params = {"sysparm_fields": "number,caller_id,caller_id.email,bogus"}
    linked = client.get(f"/table/incident/{inc['sys_id']}", params=params).json()["result"]
    assert linked == {
        "number": inc["number"],
        "caller_id": {
            "link": f"http://testserver/api/now/table/sys_user/{caller}",
            "value": caller,
        },
        "caller_id.email": "abel.tuter@example.com",
    }
    plain = client.get(
        f"/table/incident/{inc['sys_id']}",
        params={**params, "sysparm_exclude_reference_link": "true"},
    ).json()["result"]
    assert plain["caller_id"] == caller


def test_display_values(client: httpx.Client, state: ServiceNowState) -> None:
    """sysparm_display_value=true gives labels, names and user-time-zone dates; all gives both."""
    inc = create(client, caller_id="abel.tuter", impact="1", urgency="1")
    params = {"sysparm_fields": "state,priority,caller_id,opened_at"}
    shown = client.get(
        f"/table/incident/{inc['sys_id']}",
        params={
            **params,
            "sysparm_display_value": "true",
            "sysparm_exclude_reference_link": "true",
        },
        headers=basic(*AGENT),
    ).json()["result"]
    assert shown == {
        "state": "New",
        "priority": "1 - Critical",
        "caller_id": "Abel Tuter",
        "opened_at": "2026-01-05 01:00:00",
    }
    both = client.get(
        f"/table/incident/{inc['sys_id']}", params={**params, "sysparm_display_value": "all"}
    ).json()["result"]
    assert both["state"] == {"display_value": "New", "value": "1"}
    assert both["caller_id"]["display_value"] == "Abel Tuter"
    assert both["caller_id"]["value"] == user_id(state, "abel.tuter")
    assert "link" in both["caller_id"]


# -- encoded queries --------------------------------------------------------------------------------


@pytest.fixture
def incidents(client: httpx.Client, clock: FakeClock, state: ServiceNowState) -> list[str]:
    """INC1+INC2 at 09:00:00 (same second), INC3 at 09:00:01; INC3 has no correlation_id."""
    create(client, short_description="VPN down", correlation_id="CW-1001", impact="1")
    create(client, short_description="Email slow", correlation_id="CW-1002", impact="2")
    clock.advance(1)
    create(client, short_description="vpn flaps", urgency="1", caller_id="abel.tuter")
    return ["INC0010001", "INC0010002", "INC0010003"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sys_updated_on>=2026-01-05 09:00:00", [0, 1, 2]),
        ("sys_updated_on>2026-01-05 09:00:00", [2]),
        ("sys_updated_on=2026-01-05 09:00:00", [0, 1]),
        ("sys_updated_on<=2026-01-05 09:00:00", [0, 1]),
        ("sys_updated_on>=2026-01-05", [0, 1, 2]),
        ("sys_updated_on>javascript:gs.dateGenerate('2026-01-05','09:00:00')", [2]),
        ("correlation_id=CW-1001", [0]),
        ("correlation_id!=CW-1001", [1]),
        ("correlation_idISEMPTY", [2]),
        ("correlation_idISNOTEMPTY", [0, 1]),
        ("correlation_idINCW-1002,CW-9", [1]),
        ("correlation_idNOT INCW-1002", [0]),
        ("short_descriptionLIKEvpn", [0, 2]),
        ("short_descriptionNOT LIKEvpn", [1]),
        ("short_descriptionSTARTSWITHemail", [1]),
        ("short_descriptionENDSWITHdown", [0]),
        ("impact=1^ORurgency=1", [0, 2]),
        ("short_descriptionLIKEvpn^impact=1", [0]),
        ("short_descriptionLIKEvpn^impact=1^ORurgency=1", [0, 2]),
        ("impact=2^NQurgency=1", [1, 2]),
        ("priority<=3", [0, 2]),
        ("priority>3", [1]),
        ("no_such_field=1^impact=1", [0]),
        ("no_such_field=1", [0, 1, 2]),
        ("caller_id.user_name=abel.tuter", [2]),
        ("caller_id=javascript:gs.getUserID()", []),
        ("state=1^ORDERBYDESCnumber", [2, 1, 0]),
        ("ORDERBYDESCsys_updated_on^ORDERBYnumber", [2, 0, 1]),
        ("ORDERBYshort_description", [1, 0, 2]),
        ("", [0, 1, 2]),
    ],
)
def test_encoded_queries(
    client: httpx.Client, incidents: list[str], query: str, expected: list[int]
) -> None:
    """Operators, ^ / ^OR / ^NQ, ORDERBY(DESC), dot-walks, dates as UTC, bad parts dropped."""
    resp = client.get("/table/incident", params={"sysparm_query": query})
    assert numbers(resp) == [incidents[i] for i in expected]
    assert resp.headers["x-total-count"] == str(len(expected))


def test_date_generate_uses_the_callers_time_zone(
    client: httpx.Client, incidents: list[str]
) -> None:
    """gs.dateGenerate reads its arguments in the user's zone (Beth: America/Los_Angeles)."""
    query = "sys_updated_on>javascript:gs.dateGenerate('2026-01-05','01:00:00')"
    as_integration = client.get("/table/incident", params={"sysparm_query": query})
    as_agent = client.get("/table/incident", params={"sysparm_query": query}, headers=basic(*AGENT))
    assert numbers(as_integration) == incidents
    assert numbers(as_agent) == [incidents[2]]


def test_parse_encoded_query_structure() -> None:
    """^OR binds tighter than ^, ^NQ starts a new OR-ed group, ^^ escapes a caret."""
    parsed = parse_encoded_query("a=1^b=2^ORc=3^NQd=x^^y^ORDERBYDESCe^EQ")
    assert [
        [[(c.field, c.op, c.value) for c in clause] for clause in g] for g in parsed.groups
    ] == [
        [[("a", "=", "1")], [("b", "=", "2"), ("c", "=", "3")]],
        [[("d", "=", "x^y")]],
    ]
    assert parsed.order == [("e", True)]


# -- paging --------------------------------------------------------------------------------------------


def test_limit_offset_total_count_and_link(client: httpx.Client, state: ServiceNowState) -> None:
    """sysparm_limit/offset page; X-Total-Count and Link first/prev/next/last follow."""
    for n in range(5):
        state.insert("incident", {"short_description": f"n{n}"}, user_name="beth.anglin")
    first = client.get("/table/incident", params={"sysparm_limit": 2})
    assert [r["short_description"] for r in first.json()["result"]] == ["n0", "n1"]
    assert first.headers["x-total-count"] == "5"
    assert sn_links(first) == {"first": 0, "next": 2, "last": 4}
    middle = client.get("/table/incident", params={"sysparm_limit": 2, "sysparm_offset": 2})
    assert sn_links(middle) == {"first": 0, "prev": 0, "next": 4, "last": 4}
    last = client.get("/table/incident", params={"sysparm_limit": 2, "sysparm_offset": 4})
    assert [r["short_description"] for r in last.json()["result"]] == ["n4"]
    assert sn_links(last) == {"first": 0, "prev": 2, "last": 4}
    no_count = client.get(
        "/table/incident", params={"sysparm_limit": 2, "sysparm_no_count": "true"}
    )
    assert "x-total-count" not in no_count.headers
    assert set(sn_links(no_count)) == {"first", "next"}
    bare = client.get("/table/incident", params={"sysparm_suppress_pagination_header": "true"})
    assert "link" not in bare.headers
    assert len(bare.json()["result"]) == 5
    empty = client.get("/table/incident", params={"sysparm_query": "number=NOPE"})
    assert empty.status_code == 200
    assert empty.json() == {"result": []}


# -- journal --------------------------------------------------------------------------------------------


def test_comments_and_work_notes_go_to_the_journal(
    client: httpx.Client, clock: FakeClock, state: ServiceNowState
) -> None:
    """Writing comments/work_notes adds sys_journal_field rows and bumps the incident."""
    inc = create(client, comments="Opened from the PSA")
    assert inc["sys_mod_count"] == "0"
    clock.advance(60)
    patched = client.patch(
        f"/table/incident/{inc['sys_id']}",
        json={"comments": "Customer reply", "work_notes": "Internal"},
    ).json()["result"]
    assert patched["sys_mod_count"] == "1"
    assert patched["sys_updated_on"] == "2026-01-05 09:01:00"
    assert patched["comments"] == patched["work_notes"] == ""
    query = f"element_id={inc['sys_id']}^elementINcomments,work_notes^ORDERBYsys_created_on"
    rows = client.get("/table/sys_journal_field", params={"sysparm_query": query}).json()["result"]
    assert [(r["element"], r["value"], r["sys_created_on"]) for r in rows] == [
        ("comments", "Opened from the PSA", "2026-01-05 09:00:00"),
        ("comments", "Customer reply", "2026-01-05 09:01:00"),
        ("work_notes", "Internal", "2026-01-05 09:01:00"),
    ]
    assert {r["name"] for r in rows} == {"incident"}
    assert {r["sys_created_by"] for r in rows} == {"ticketbridge.integration"}
    assert all(SYS_ID_RE.match(r["sys_id"]) and DT_RE.match(r["sys_created_on"]) for r in rows)
    marker = client.get(
        "/table/sys_journal_field",
        params={"sysparm_query": f"element_id={inc['sys_id']}^valueLIKE[tb:abc]"},
    )
    assert marker.json()["result"] == []


def test_noop_update_changes_nothing(client: httpx.Client, clock: FakeClock) -> None:
    """A PATCH setting the values already there does not bump sys_mod_count or sys_updated_on."""
    inc = create(client, impact="2")
    clock.advance(5)
    same = client.patch(f"/table/incident/{inc['sys_id']}", json={"impact": "2", "bogus": 1})
    assert same.json()["result"]["sys_mod_count"] == "0"
    assert same.json()["result"]["sys_updated_on"] == "2026-01-05 09:00:00"


def test_journal_table_is_read_only(client: httpx.Client) -> None:
    """Inserting into sys_journal_field via the Table API is refused by ACL (403)."""
    resp = client.post("/table/sys_journal_field", json={"value": "x"})
    assert resp.status_code == 403
    assert resp.json()["error"]["message"] == "Operation Failed"


# -- state rules ------------------------------------------------------------------------------------------


def test_on_hold_needs_a_reason(client: httpx.Client) -> None:
    """state 3 without hold_reason: 403 Data Policy Exception; with one it sticks."""
    inc = create(client)
    refused = client.patch(f"/table/incident/{inc['sys_id']}", json={"state": "3"})
    assert refused.status_code == 403
    assert refused.json()["status"] == "failure"
    assert "Data Policy Exception" in refused.json()["error"]["detail"]
    assert "On hold reason" in refused.json()["error"]["detail"]
    held = client.patch(
        f"/table/incident/{inc['sys_id']}", json={"state": 3, "hold_reason": "4"}
    ).json()["result"]
    assert (held["state"], held["incident_state"], held["hold_reason"]) == ("3", "3", "4")
    resumed = client.patch(f"/table/incident/{inc['sys_id']}", json={"state": "2"}).json()
    assert resumed["result"]["hold_reason"] == ""


def test_resolve_needs_close_code_and_notes_and_stamps_resolved_at(
    client: httpx.Client, clock: FakeClock, state: ServiceNowState
) -> None:
    """state 6/7 need close_code and close_notes; entering 6 sets resolved_at/by; 7 closes."""
    inc = create(client)
    refused = client.patch(
        f"/table/incident/{inc['sys_id']}", json={"state": "6", "close_code": "Solution provided"}
    )
    assert refused.status_code == 403
    assert "Resolution notes" in refused.json()["error"]["detail"]
    clock.advance(120)
    resolved = client.patch(
        f"/table/incident/{inc['sys_id']}",
        json={"state": "6", "close_code": "Solution provided", "close_notes": "Rebooted"},
        params={"sysparm_exclude_reference_link": "true"},
    ).json()["result"]
    assert resolved["resolved_at"] == "2026-01-05 09:02:00"
    assert resolved["resolved_by"] == user_id(state, "ticketbridge.integration")
    assert resolved["active"] == "true"
    closed = client.patch(f"/table/incident/{inc['sys_id']}", json={"state": "7"}).json()
    assert closed["result"]["active"] == "false"
    assert closed["result"]["closed_at"] == "2026-01-05 09:02:00"
    reopened = client.patch(f"/table/incident/{inc['sys_id']}", json={"state": "2"}).json()
    assert reopened["result"]["resolved_at"] == ""
    assert reopened["result"]["reopen_count"] == "1"


def test_caller_comment_takes_incident_off_hold(
    client: httpx.Client, agent: httpx.Client, state: ServiceNowState
) -> None:
    """On Hold / Awaiting Caller: a comment by the caller returns it to In Progress; others do not."""
    inc = create(client, caller_id=user_id(state, "ticketbridge.integration"))
    client.patch(f"/table/incident/{inc['sys_id']}", json={"state": "3", "hold_reason": "1"})
    by_agent = agent.patch(f"/table/incident/{inc['sys_id']}", json={"comments": "Any news?"})
    assert by_agent.json()["result"]["state"] == "3"
    work_note = client.patch(f"/table/incident/{inc['sys_id']}", json={"work_notes": "internal"})
    assert work_note.json()["result"]["state"] == "3"
    by_caller = client.patch(f"/table/incident/{inc['sys_id']}", json={"comments": "Here it is"})
    result = by_caller.json()["result"]
    assert (result["state"], result["hold_reason"]) == ("2", "")


def test_awaiting_vendor_is_not_cleared_by_caller(
    client: httpx.Client, state: ServiceNowState
) -> None:
    """Only Awaiting Caller is released by the caller's comment."""
    inc = create(client, caller_id="ticketbridge.integration")
    client.patch(f"/table/incident/{inc['sys_id']}", json={"state": "3", "hold_reason": "4"})
    after = client.patch(f"/table/incident/{inc['sys_id']}", json={"comments": "ping"}).json()
    assert (after["result"]["state"], after["result"]["hold_reason"]) == ("3", "4")


# -- headers, PUT, DELETE -----------------------------------------------------------------------------------


def test_no_response_body_header(client: httpx.Client, state: ServiceNowState) -> None:
    """X-no-response-body: true gives POST 201 + Location and PATCH 204, both without a body."""
    posted = client.post(
        "/table/incident",
        json={"short_description": "quiet"},
        headers={"X-no-response-body": "true"},
    )
    assert posted.status_code == 201
    assert posted.content == b""
    sys_id = posted.headers["location"].rsplit("/", 1)[-1]
    patched = client.patch(
        f"/table/incident/{sys_id}", json={"comments": "x"}, headers={"X-no-response-body": "true"}
    )
    assert patched.status_code == 204
    assert patched.content == b""
    assert state.get("incident", sys_id)["sys_mod_count"] == "1"


def test_put_is_a_partial_update_and_delete_removes(client: httpx.Client) -> None:
    """PUT changes only the given fields, like PATCH; DELETE answers 204 then 404."""
    inc = create(client, description="keep me")
    put = client.put(f"/table/incident/{inc['sys_id']}", json={"short_description": "renamed"})
    assert put.status_code == 200
    assert put.json()["result"]["description"] == "keep me"
    assert put.json()["result"]["short_description"] == "renamed"
    assert client.delete(f"/table/incident/{inc['sys_id']}").status_code == 204
    assert client.get(f"/table/incident/{inc['sys_id']}").status_code == 404
    assert client.delete(f"/table/incident/{inc['sys_id']}").status_code == 404


def test_bad_json_and_reference_tables(client: httpx.Client) -> None:
    """Malformed JSON is 400; sys_user, core_company and sys_choice are readable."""
    bad = client.post(
        "/table/incident", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json()["status"] == "failure"
    users = client.get("/table/sys_user", params={"sysparm_query": "user_name=beth.anglin"})
    assert [u["name"] for u in users.json()["result"]] == ["Beth Anglin"]
    companies = client.get("/table/core_company", params={"sysparm_fields": "name"})
    assert {"name": "Acme Dental Group"} in companies.json()["result"]
    codes = client.get(
        "/table/sys_choice",
        params={"sysparm_query": "name=incident^element=close_code", "sysparm_fields": "value"},
    )
    assert {"value": "Solution provided"} in codes.json()["result"]


def test_state_dump(client: httpx.Client) -> None:
    """/_sandbox/state dumps every table."""
    create(client, comments="hello")
    dump = client.get("http://testserver/_sandbox/state").json()
    assert [i["number"] for i in dump["tables"]["incident"]] == ["INC0010001"]
    assert [j["value"] for j in dump["tables"]["sys_journal_field"]] == ["hello"]
