"""The simulators' exchanges validated against the vendors' OpenAPI specs (openapi-core).

The specs live outside the project (``<workspace>/shared/specs`` or
``$TICKETBRIDGE_SHARED_DIR/specs``); without them these tests skip.  Where a
spec contradicts the documented product, the fix applied here says why.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.clock import FakeClock

pytestmark = pytest.mark.contract

CW_SPEC = "connectwise/connectwise-manage-2025.1.subset.openapi.json"
SN_SPEC = "servicenow/servicenow-now-api.ticketbridge.openapi.json"
SN_DATETIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"}

#: (spec file, JSON pointer, replacement, reason)
FIXES: list[tuple[str, str, Any, str]] = [
    (
        CW_SPEC,
        "/components/schemas/CustomFieldValue/properties/value",
        {},
        "rebuilt from a generated client that types it as a map; the API carries a scalar",
    ),
    (
        SN_SPEC,
        "/components/schemas/Record/properties/sys_created_on",
        SN_DATETIME,
        "actual values are stored UTC 'YYYY-MM-DD HH:MM:SS' (vendor Table API examples)",
    ),
    (
        SN_SPEC,
        "/components/schemas/Record/properties/sys_updated_on",
        SN_DATETIME,
        "actual values are stored UTC 'YYYY-MM-DD HH:MM:SS' (vendor Table API examples)",
    ),
    (
        SN_SPEC,
        "/components/schemas/Record/properties/sys_mod_count",
        {"type": "string", "pattern": r"^\d+$"},
        'the Table API returns every value as a string ("sys_mod_count": "7")',
    ),
]


def _specs_dir() -> Path | None:
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "specs"]
    env = os.environ.get("TICKETBRIDGE_SHARED_DIR")
    if env:
        candidates += [Path(env) / "specs", Path(env)]
    return next((c for c in candidates if (c / CW_SPEC).is_file()), None)


def _load(name: str) -> tuple[OpenAPI, str]:
    specs = _specs_dir()
    if specs is None:
        pytest.skip("the vendors' OpenAPI specs are not beside the project")
    doc = json.loads((specs / name).read_text(encoding="utf-8"))
    for spec, pointer, value, _reason in FIXES:
        if spec != name:
            continue
        node = doc
        keys = pointer.strip("/").split("/")
        for key in keys[:-1]:
            node = node[key]
        assert keys[-1] in node, f"fix {pointer} names nothing"
        node[keys[-1]] = value
    server = doc["servers"][0]
    url = server["url"]
    for var, spec_var in server.get("variables", {}).items():
        url = url.replace("{" + var + "}", spec_var["default"])
    config = Config(
        extra_media_type_deserializers={
            "application/vnd.connectwise.com+json": lambda value, **_: json.loads(value)
        }
    )
    return OpenAPI.from_dict(doc, config=config), url


class _Req:
    def __init__(self, request: httpx.Request, server_url: str, rel: str) -> None:
        server = httpx.URL(server_url)
        self.host_url = f"{server.scheme}://{server.netloc.decode()}"
        self.path = server.path.rstrip("/") + rel
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(request.url.query.decode(), keep_blank_values=True)),
            header=Headers(list(request.headers.multi_items())),
            cookie=ImmutableMultiDict(),
        )


class _Resp:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "").lower()
        self.headers = Headers(list(response.headers.multi_items()))
        self.data = response.content or None


class Checker:
    """Records exchanges through a client and validates each against the spec."""

    def __init__(self, api: OpenAPI, server_url: str, api_root: str) -> None:
        self.api = api
        self.server_url = server_url
        self.api_root = api_root
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.exchanges.append((response.request, response))

    def problems(self) -> list[str]:
        out = []
        for request, response in self.exchanges:
            rel = request.url.path.removeprefix(self.api_root)
            call = f"{request.method} {rel} -> {response.status_code}"
            req = _Req(request, self.server_url, rel)
            try:
                if response.status_code < 400:  # error cases send bad requests on purpose
                    self.api.validate_request(req)
                if response.content:
                    self.api.validate_response(req, _Resp(response))
            except Exception as exc:  # openapi-core raises a family of errors
                causes = [f"{type(exc).__name__}: {exc}"]
                errors = getattr(exc.__cause__, "schema_errors", None) or []
                causes += [getattr(e, "message", str(e)) for e in errors]
                out.append(f"{call}: {'; '.join(causes)}")
        return out


@pytest.fixture
def cw_checked(
    clock: FakeClock, make_client: Callable[..., httpx.Client]
) -> tuple[httpx.Client, Checker]:
    api, server_url = _load(CW_SPEC)
    checker = Checker(api, server_url, connectwise.CW_PREFIX)
    client = make_client(
        connectwise.create_app(connectwise.ConnectWiseState(clock=clock.now)),
        base_url=f"http://testserver{connectwise.CW_PREFIX}",
        headers={
            "Authorization": "Basic " + base64.b64encode(b"msp+pub:priv").decode(),
            "clientId": "00000000-0000-0000-0000-000000000000",
            "Accept": connectwise.CW_MEDIA_TYPE,
        },
    )
    client.event_hooks["response"] = [checker.hook]
    return client, checker


@pytest.fixture
def sn_checked(
    clock: FakeClock, make_client: Callable[..., httpx.Client]
) -> tuple[httpx.Client, Checker]:
    api, server_url = _load(SN_SPEC)
    checker = Checker(api, server_url, "/api/now")
    client = make_client(
        servicenow.create_app(servicenow.ServiceNowState(clock=clock.now)),
        base_url="http://testserver/api/now",
        headers={
            "Authorization": "Basic "
            + base64.b64encode(b"ticketbridge.integration:integration-pass").decode()
        },
    )
    client.event_hooks["response"] = [checker.hook]
    return client, checker


def test_connectwise_exchanges_match_the_spec(cw_checked: tuple[httpx.Client, Checker]) -> None:
    """Tickets, notes, counts, priorities and callbacks validate against the 2025.1 subset."""
    client, checker = cw_checked
    created = client.post(
        "/service/tickets",
        json={
            "summary": "Spec check",
            "company": {"identifier": "ACME"},
            "board": {"name": "Vendor Escalations"},
            "contact": {"id": 1},
            "owner": {"identifier": "jsmith"},
            "type": {"name": "Vendor Incident"},
            "initialDescription": "first",
        },
    )
    assert created.status_code == 201
    ticket = created.json()
    fields = ticket["customFields"]
    fields[0]["value"] = "INC0010001"
    patched = client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[
            {"op": "replace", "path": "status", "value": {"name": "Closed"}},
            {"op": "replace", "path": "customFields", "value": fields},
        ],
    )
    assert patched.status_code == 200
    put = client.put(
        f"/service/tickets/{ticket['id']}",
        json={"summary": "Spec check 2", "company": {"id": 1}},
    )
    assert put.status_code == 200
    assert (
        client.get("/service/tickets", params={"conditions": "id > 0", "page": 1}).status_code
        == 200
    )
    assert client.get("/service/tickets/count").json() == {"count": 1}
    assert client.get(f"/service/tickets/{ticket['id']}").status_code == 200
    note = client.post(
        f"/service/tickets/{ticket['id']}/notes",
        json={"text": "n", "internalAnalysisFlag": True},
    ).json()
    assert client.get(f"/service/tickets/{ticket['id']}/notes").status_code == 200
    assert client.get(f"/service/tickets/{ticket['id']}/notes/count").status_code == 200
    assert client.get(f"/service/tickets/{ticket['id']}/notes/{note['id']}").status_code == 200
    assert (
        client.patch(
            f"/service/tickets/{ticket['id']}/notes/{note['id']}",
            json=[{"op": "replace", "path": "text", "value": "n2"}],
        ).status_code
        == 200
    )
    assert client.get("/service/priorities").status_code == 200
    callback = client.post(
        "/system/callbacks",
        json={
            "url": "http://127.0.0.1:9/cb?recordId=",
            "objectId": 1,
            "type": "ticket",
            "level": "owner",
        },
    ).json()
    assert client.get("/system/callbacks").status_code == 200
    assert client.get(f"/system/callbacks/{callback['id']}").status_code == 200
    assert client.delete(f"/system/callbacks/{callback['id']}").status_code == 204
    assert len(checker.exchanges) == 16
    assert checker.problems() == []


def test_servicenow_exchanges_match_the_spec(sn_checked: tuple[httpx.Client, Checker]) -> None:
    """Table API list/get/post/patch/put/delete and error answers validate against the spec."""
    client, checker = sn_checked
    created = client.post(
        "/table/incident",
        json={"short_description": "Spec check", "caller_id": "abel.tuter", "comments": "hi"},
    )
    assert created.status_code == 201
    sys_id = created.json()["result"]["sys_id"]
    assert (
        client.get(
            "/table/incident", params={"sysparm_query": "active=true", "sysparm_limit": 5}
        ).status_code
        == 200
    )
    assert client.get(f"/table/incident/{sys_id}").status_code == 200
    assert client.patch(f"/table/incident/{sys_id}", json={"work_notes": "x"}).status_code == 200
    assert client.put(f"/table/incident/{sys_id}", json={"urgency": "1"}).status_code == 200
    journal = client.get(
        "/table/sys_journal_field", params={"sysparm_query": f"element_id={sys_id}"}
    )
    assert len(journal.json()["result"]) == 2
    assert client.get("/table/incident/" + "f" * 32).status_code == 404
    bad = client.patch(
        f"/table/incident/{sys_id}", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    unauth = client.get("/table/incident", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert unauth.status_code == 401
    assert client.delete(f"/table/incident/{sys_id}").status_code == 204
    assert checker.problems() == []
