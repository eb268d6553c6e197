"""Fault injection and the request log, on both simulators."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.clock import FakeClock
from ticketbridge.sandbox._faults import FaultPlan, FaultRule, InjectedDisconnect

CW_AUTH = {
    "Authorization": "Basic " + base64.b64encode(b"msp+pub:priv").decode(),
    "clientId": "00000000-0000-0000-0000-000000000000",
}
SN_AUTH = {"Authorization": "Basic " + base64.b64encode(b"beth.anglin:agent-pass").decode()}
TICKETS = "/v4_6_release/apis/3.0/service/tickets"
TICKET = {"summary": "Fault test", "company": {"identifier": "ACME"}}


@pytest.fixture
def cw_state(clock: FakeClock) -> connectwise.ConnectWiseState:
    return connectwise.ConnectWiseState(clock=clock.now)


@pytest.fixture
def cw(
    cw_state: connectwise.ConnectWiseState, make_client: Callable[..., httpx.Client]
) -> httpx.Client:
    return make_client(connectwise.create_app(cw_state), headers=CW_AUTH)


@pytest.fixture
def sn_state(clock: FakeClock) -> servicenow.ServiceNowState:
    return servicenow.ServiceNowState(clock=clock.now)


@pytest.fixture
def sn(
    sn_state: servicenow.ServiceNowState, make_client: Callable[..., httpx.Client]
) -> httpx.Client:
    return make_client(servicenow.create_app(sn_state), headers=SN_AUTH)


def add_faults(client: httpx.Client, *rules: dict[str, Any]) -> None:
    resp = client.post("/_sandbox/faults", json=list(rules))
    assert resp.status_code == 201, resp.text


def test_status_fault_with_retry_after_fires_count_times(
    cw: httpx.Client, cw_state: connectwise.ConnectWiseState
) -> None:
    """A 429 rule with Retry-After answers twice, then the real API answers; nothing applied."""
    add_faults(
        cw,
        {
            "method": "POST",
            "path": "/service/tickets$",
            "status": 429,
            "retry_after": 7,
            "count": 2,
        },
    )
    first = cw.post(TICKETS, json=TICKET)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "7"
    assert first.json()["message"].startswith("Too many requests")
    assert cw.post(TICKETS, json=TICKET).status_code == 429
    assert cw.post(TICKETS, json=TICKET).status_code == 201
    assert len(cw_state.tickets) == 1
    log = cw.get("/_sandbox/requests").json()
    assert [(r["method"], r["status"], r["fault"]) for r in log] == [
        ("POST", 429, "status"),
        ("POST", 429, "status"),
        ("POST", 201, None),
    ]
    faults = cw.get("/_sandbox/faults").json()
    assert (faults[0]["fired"], faults[0]["remaining"]) == (2, 0)


def test_status_fault_uses_vendor_error_shapes_and_custom_bodies(
    cw: httpx.Client, sn: httpx.Client
) -> None:
    """Default bodies follow each vendor's error format; a rule may give its own body."""
    add_faults(sn, {"path": "/api/now/table/incident", "status": 503})
    resp = sn.get("/api/now/table/incident")
    assert resp.status_code == 503
    assert resp.json()["status"] == "failure"
    assert resp.json()["error"]["message"]
    add_faults(
        cw, {"path": "priorities", "status": 502, "body": {"code": "Gateway", "message": "x"}}
    )
    resp = cw.get("/v4_6_release/apis/3.0/service/priorities")
    assert resp.status_code == 502
    assert resp.json() == {"code": "Gateway", "message": "x"}


def test_garbage_fault_is_a_non_json_200(sn: httpx.Client) -> None:
    """The garbage action answers 200 with an HTML body that is not JSON."""
    add_faults(sn, {"path": "/table/", "action": "garbage"})
    resp = sn.get("/api/now/table/incident")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError, match="Expecting value"):
        resp.json()
    assert sn.get("/api/now/table/incident").json() == {"result": []}


def test_delay_fault_delays_then_serves(cw: httpx.Client) -> None:
    """The delay action waits, then the real answer comes."""
    add_faults(cw, {"path": "/service/priorities", "action": "delay", "delay": 0.3})
    started = time.monotonic()
    resp = cw.get("/v4_6_release/apis/3.0/service/priorities")
    assert time.monotonic() - started >= 0.3
    assert resp.status_code == 200
    assert len(resp.json()) == 4


def test_apply_then_fail_applies_the_write(
    cw: httpx.Client, cw_state: connectwise.ConnectWiseState
) -> None:
    """apply_then_fail: the ticket is created, yet the client sees a 500."""
    add_faults(cw, {"method": "POST", "path": "tickets$", "action": "apply_then_fail"})
    resp = cw.post(TICKETS, json=TICKET)
    assert resp.status_code == 500
    assert [t["summary"] for t in cw_state.tickets.values()] == ["Fault test"]


def test_apply_then_disconnect_applies_the_write(
    sn: httpx.Client, sn_state: servicenow.ServiceNowState
) -> None:
    """apply_then_fail with fail_with=disconnect: written, and the client gets a transport error."""
    add_faults(
        sn,
        {
            "method": "POST",
            "path": "incident",
            "action": "apply_then_fail",
            "fail_with": "disconnect",
        },
    )
    with pytest.raises(httpx.RemoteProtocolError):
        sn.post("/api/now/table/incident", json={"short_description": "lost answer"})
    assert [i["short_description"] for i in sn_state.tables["incident"].values()] == ["lost answer"]
    assert sn.get("/_sandbox/requests").json()[-1]["status"] == 0


def test_disconnect_fault_applies_nothing(
    cw: httpx.Client, cw_state: connectwise.ConnectWiseState
) -> None:
    """disconnect drops the connection before the API runs."""
    add_faults(cw, {"method": "POST", "action": "disconnect"})
    with pytest.raises(InjectedDisconnect):
        cw.post(TICKETS, json=TICKET)
    assert cw_state.tickets == {}


def test_rules_match_method_path_and_skip(cw: httpx.Client) -> None:
    """Only matching method+path are hit; skip lets the first matches through; count=None repeats."""
    add_faults(
        cw,
        {"method": "GET", "path": "/priorities$", "status": 500, "skip": 1, "count": None},
    )
    url = "/v4_6_release/apis/3.0/service/priorities"
    assert cw.get(url).status_code == 200
    assert [cw.get(url).status_code for _ in range(3)] == [500, 500, 500]
    assert cw.post(TICKETS, json=TICKET).status_code == 201
    assert cw.get("/v4_6_release/apis/3.0/service/boards").status_code == 200
    assert cw.delete("/_sandbox/faults").status_code == 204
    assert cw.get(url).status_code == 200


def test_request_log_filters_and_clears(cw: httpx.Client) -> None:
    """GET /_sandbox/requests filters by method and path regex; admin calls are not logged."""
    cw.get(TICKETS, params={"pageSize": 5})
    cw.post(TICKETS, json=TICKET)
    cw.get("/v4_6_release/apis/3.0/service/priorities")
    everything = cw.get("/_sandbox/requests").json()
    assert [r["path"].rsplit("/", 1)[-1] for r in everything] == [
        "tickets",
        "tickets",
        "priorities",
    ]
    assert everything[0]["query"] == "pageSize=5"
    posts = cw.get("/_sandbox/requests", params={"method": "post"}).json()
    assert [r["status"] for r in posts] == [201]
    tickets = cw.get("/_sandbox/requests", params={"path": "tickets$"}).json()
    assert len(tickets) == 2
    assert cw.get("/_sandbox/requests", params={"path": "("}).status_code == 400
    assert cw.delete("/_sandbox/requests").status_code == 204
    assert cw.get("/_sandbox/requests").json() == []


def test_request_log_names_clients_and_totals_every_request(cw: httpx.Client) -> None:
    """``X-Sandbox-Client`` is recorded; /requests/totals counts by client and method."""
    cw.get(TICKETS, params={"pageSize": 5})
    cw.post(TICKETS, json=TICKET, headers={"X-Sandbox-Client": "load"})
    cw.get(TICKETS, headers={"X-Sandbox-Client": "load"})
    cw.get(TICKETS)
    assert [r["client"] for r in cw.get("/_sandbox/requests").json()] == [
        None,
        "load",
        "load",
        None,
    ]
    assert cw.get("/_sandbox/requests/totals").json() == [
        {"client": None, "method": "GET", "count": 2},
        {"client": "load", "method": "GET", "count": 1},
        {"client": "load", "method": "POST", "count": 1},
    ]
    assert cw.delete("/_sandbox/requests").status_code == 204
    assert cw.get("/_sandbox/requests/totals").json() == []


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "("},
        {"action": "explode"},
        {"status": 99},
        {"count": 0},
        {"unknown": 1},
        "not a rule",
    ],
)
def test_invalid_fault_rules_are_400(cw: httpx.Client, rule: Any) -> None:
    """Bad regexes, actions, statuses, counts and unknown keys are refused."""
    resp = cw.post("/_sandbox/faults", json=[rule])
    assert resp.status_code == 400
    assert cw.get("/_sandbox/faults").json() == []


def test_fault_plan_directly() -> None:
    """FaultPlan.take honours order, method, count and skip without HTTP."""
    plan = FaultPlan()
    plan.add(
        [
            {"method": "patch", "path": "tickets/\\d+$", "count": 1},
            {"path": ".*", "status": 503, "skip": 2, "count": None},
        ]
    )
    assert plan.take("GET", "/x") is None
    assert plan.take("GET", "/x") is None
    third = plan.take("GET", "/x")
    assert third is not None
    assert third.status == 503
    first = plan.take("PATCH", "/service/tickets/12")
    assert first is not None
    assert first.method == "PATCH"
    assert first.status == 500
    again = plan.take("PATCH", "/service/tickets/12")
    assert again is not None
    assert again.status == 503
    with pytest.raises(ValidationError):
        FaultRule.model_validate({"delay": -1})


def test_apply_then_garbage_applies_and_answers_an_html_200(
    sn: httpx.Client, sn_state: servicenow.ServiceNowState
) -> None:
    """apply_then_fail with fail_with=garbage: the write runs, the client sees a 200 page."""
    add_faults(
        sn,
        {
            "method": "POST",
            "path": "/api/now/table/incident$",
            "action": "apply_then_fail",
            "fail_with": "garbage",
        },
    )
    resp = sn.post("/api/now/table/incident", json={"short_description": "behind a proxy"})
    assert (200, "text/html") == (resp.status_code, resp.headers["content-type"].split(";")[0])
    assert ["behind a proxy"] == [
        r["short_description"]
        for r in sn_state.tables["incident"].values()
        if r["short_description"] == "behind a proxy"
    ]


def test_ignore_fields_drops_fields_of_an_object_body(
    sn: httpx.Client, sn_state: servicenow.ServiceNowState
) -> None:
    """A field ACL: the named fields are dropped, the rest applied, the answer shows the old
    value with a 200."""
    created = sn.post("/api/now/table/incident", json={"short_description": "acl"}).json()
    sys_id = created["result"]["sys_id"]
    add_faults(sn, {"method": "PATCH", "action": "ignore_fields", "fields": ["state"]})
    resp = sn.patch(
        f"/api/now/table/incident/{sys_id}",
        params={"sysparm_fields": "state,urgency"},
        json={"state": "2", "urgency": "1"},
    )
    assert (200, {"state": "1", "urgency": "1"}) == (resp.status_code, resp.json()["result"])
    assert "1" == sn_state.get("incident", sys_id)["state"]


def test_ignore_fields_skips_json_patch_operations(
    cw: httpx.Client, cw_state: connectwise.ConnectWiseState
) -> None:
    """On a JSON-Patch body the simulator skips the named paths and answers 200 unchanged."""
    ticket = cw.post(TICKETS, json=TICKET).json()
    add_faults(cw, {"method": "PATCH", "action": "ignore_fields", "fields": ["summary"]})
    resp = cw.patch(
        f"{TICKETS}/{ticket['id']}", json=[{"op": "replace", "path": "summary", "value": "x"}]
    )
    assert (200, "Fault test") == (resp.status_code, resp.json()["summary"])
    assert "Fault test" == cw_state.tickets[ticket["id"]]["summary"]
