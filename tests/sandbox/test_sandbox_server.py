"""Over real loopback HTTP: SandboxServer, signed ConnectWise callbacks, ServiceNow outbound."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.sandbox import SandboxServer, run_sandbox

CW_AUTH = {
    "Authorization": "Basic " + base64.b64encode(b"msp+pub:priv").decode(),
    "clientId": "00000000-0000-0000-0000-000000000000",
}
SN_AUTH = ("ticketbridge.integration", "integration-pass")
CW_API = "/v4_6_release/apis/3.0"


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook target on loopback that records every POST."""

    url: str
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.hits) >= n:
                    return list(self.hits)
            time.sleep(0.02)
        with self.lock:
            return list(self.hits)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = FastAPI()
    box = Receiver(url="")

    @app.post("/hook/{name}")
    async def hook(name: str, request: Request) -> Response:
        if name == "slow":
            await asyncio.sleep(1.0)
        hit = Hit(
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        with box.lock:
            box.hits.append(hit)
        return Response(status_code=204 if name != "broken" else 500)

    with SandboxServer(app) as server:
        box.url = server.url
        yield box


@pytest.fixture
def cw_server() -> Iterator[tuple[SandboxServer, connectwise.ConnectWiseState]]:
    state = connectwise.ConnectWiseState()
    with SandboxServer(connectwise.create_app(state)) as server:
        yield server, state


@pytest.fixture
def cw(cw_server: tuple[SandboxServer, connectwise.ConnectWiseState]) -> Iterator[httpx.Client]:
    server, _ = cw_server
    with httpx.Client(
        base_url=server.url + CW_API, headers=CW_AUTH, trust_env=False, timeout=10
    ) as client:
        yield client


def register(cw: httpx.Client, url: str, **extra: Any) -> dict[str, Any]:
    body = {"url": url, "objectId": 1, "type": "ticket", "level": "owner", **extra}
    resp = cw.post("/system/callbacks", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def create_ticket(cw: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {"summary": "Server room hot", "company": {"identifier": "ACME"}, **extra}
    resp = cw.post("/service/tickets", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_sandbox_server_serves_and_stops() -> None:
    """start() returns once it accepts connections on 127.0.0.1; stop() closes the port.

    The simulator learns the server's URL while it runs; the same app can be served again.
    """
    state = servicenow.ServiceNowState()
    server = SandboxServer(servicenow.create_app(state)).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert state.public_url == server.url
        resp = httpx.get(f"{server.url}/api/now/table/sys_user", auth=SN_AUTH, trust_env=False)
        assert resp.status_code == 200
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/api/now/table/sys_user", trust_env=False, timeout=2)
    assert state.public_url is None
    with SandboxServer(server.app) as again:
        assert state.public_url == again.url
        assert httpx.get(
            f"{again.url}/api/now/table/sys_user", auth=SN_AUTH, trust_env=False
        ).is_success


def test_sandbox_connections_send_without_nagle() -> None:
    """The listening socket says it is TCP, so asyncio sets TCP_NODELAY on every connection
    it accepts: keep-alive responses go out at once instead of waiting ~40 ms for the
    client's delayed ACK (with protocol 0 asyncio leaves Nagle on)."""
    server = SandboxServer(FastAPI()).start()
    try:
        listening = server._socket  # the socket asyncio serves from
        assert listening is not None
        assert (socket.SOCK_STREAM, socket.IPPROTO_TCP) == (listening.type, listening.proto)
    finally:
        server.stop()


def test_callbacks_are_signed_and_carry_the_record_id(
    cw: httpx.Client,
    cw_server: tuple[SandboxServer, connectwise.ConnectWiseState],
    receiver: Receiver,
) -> None:
    """Ticket added/updated POSTs to url+id with a body signed by the key at Metadata.key_url."""
    server, state = cw_server
    callback = register(cw, f"{receiver.url}/hook/cw?recordId=")
    ticket = create_ticket(cw)
    note = cw.post(
        f"/service/tickets/{ticket['id']}/notes",
        json={"text": "Looking", "detailDescriptionFlag": True},
    )
    assert note.status_code == 201
    assert state.dispatcher.wait_idle(5)
    hits = receiver.wait_for(2)
    assert len(hits) == 2
    assert sorted(h.json()["Action"] for h in hits) == ["added", "updated"]
    for hit in hits:
        assert hit.query == {"recordId": str(ticket["id"])}
        payload = hit.json()
        assert payload["Type"] == "ticket"
        assert payload["ID"] == ticket["id"]
        assert payload["CompanyId"] == "msp"
        assert payload["MemberId"] == "TicketBridgeAPI"
        assert payload["CallbackObjectRecId"] == callback["id"]
        assert payload["FromUrl"] == server.url.removeprefix("http://")
        assert json.loads(payload["Entity"])["id"] == ticket["id"]
        key_url = payload["Metadata"]["key_url"]
        assert key_url.startswith(server.url + "/_sandbox/callbacks/signing-key/")
        key = httpx.get(key_url, trust_env=False).json()["signing_key"]
        digest = hashlib.sha256(key.encode()).digest()
        expected = base64.b64encode(hmac.new(digest, hit.body, hashlib.sha256).digest()).decode()
        assert hmac.compare_digest(hit.headers["x-content-signature"], expected)
        tampered = base64.b64encode(
            hmac.new(digest, hit.body + b" ", hashlib.sha256).digest()
        ).decode()
        assert tampered != hit.headers["x-content-signature"]


def test_callback_levels_and_self_suppression(
    cw: httpx.Client,
    cw_server: tuple[SandboxServer, connectwise.ConnectWiseState],
    receiver: Receiver,
) -> None:
    """Board level hears only its board; self-suppressed callbacks skip the API member's own changes."""
    _, state = cw_server
    register(cw, f"{receiver.url}/hook/board?recordId=", level="board", objectId=2)
    register(cw, f"{receiver.url}/hook/quiet?recordId=", isSelfSuppressedFlag=True)
    create_ticket(cw, board={"id": 1})
    on_board_2 = create_ticket(cw, board={"id": 2})
    cw.post(
        f"/service/tickets/{on_board_2['id']}/notes",
        json={"text": "tech note", "internalAnalysisFlag": True},
        headers={"X-Sandbox-Member": "jsmith"},
    )
    assert state.dispatcher.wait_idle(5)
    hits = receiver.wait_for(3)
    got = sorted((h.path, h.query["recordId"], h.json()["MemberId"]) for h in hits)
    assert got == [
        ("/hook/board", str(on_board_2["id"]), "TicketBridgeAPI"),
        ("/hook/board", str(on_board_2["id"]), "jsmith"),
        ("/hook/quiet", str(on_board_2["id"]), "jsmith"),
    ]


def test_webhooks_can_be_switched_off_and_dropped(
    cw: httpx.Client,
    cw_server: tuple[SandboxServer, connectwise.ConnectWiseState],
    receiver: Receiver,
) -> None:
    """/_sandbox/webhooks enabled=false or drop_rate=1 drops deliveries (and records them)."""
    server, state = cw_server
    register(cw, f"{receiver.url}/hook/cw?recordId=")
    admin = httpx.Client(base_url=server.url, trust_env=False)
    assert admin.post("/_sandbox/webhooks", json={"enabled": False}).json()["enabled"] is False
    create_ticket(cw)
    admin.post("/_sandbox/webhooks", json={"enabled": True, "drop_rate": 1.0})
    create_ticket(cw)
    assert admin.post("/_sandbox/webhooks", json={"drop_rate": 2}).status_code == 400
    admin.post("/_sandbox/webhooks", json={"drop_rate": 0.0})
    create_ticket(cw)
    assert state.dispatcher.wait_idle(5)
    assert len(receiver.wait_for(1)) == 1
    deliveries = admin.get("/_sandbox/deliveries").json()
    assert [d["dropped"] for d in deliveries] == [True, True, False]
    assert deliveries[-1]["status"] == 204
    admin.close()


def test_slow_or_failing_receivers_never_block_the_api(
    cw: httpx.Client,
    cw_server: tuple[SandboxServer, connectwise.ConnectWiseState],
    receiver: Receiver,
) -> None:
    """Deliveries run in the background: a slow target, a 500 and a closed port do not delay answers."""
    _, state = cw_server
    register(cw, f"{receiver.url}/hook/slow?recordId=")
    register(cw, f"{receiver.url}/hook/broken?recordId=")
    register(cw, "http://127.0.0.1:9/closed?recordId=")
    started = time.monotonic()
    create_ticket(cw)
    assert time.monotonic() - started < 0.9
    assert state.dispatcher.wait_idle(8)
    outcomes = sorted(
        (d.url.split("?")[0].rsplit("/", 1)[-1], d.status, d.error is not None)
        for d in state.dispatcher.records()
    )
    assert outcomes == [("broken", 500, False), ("closed", None, True), ("slow", 204, False)]


def test_servicenow_outbound_rest_message(receiver: Receiver) -> None:
    """After incident insert/update (journal included) the instance POSTs with the secret header."""
    state = servicenow.ServiceNowState()
    with SandboxServer(servicenow.create_app(state)) as server:
        admin = httpx.Client(base_url=server.url, trust_env=False)
        config = admin.post(
            "/_sandbox/outbound",
            json={"url": f"{receiver.url}/hook/sn", "headers": {"X-Ticketbridge-Token": "t0ken"}},
        )
        assert config.status_code == 200
        assert config.json()["url"] == f"{receiver.url}/hook/sn"
        api = httpx.Client(base_url=f"{server.url}/api/now", auth=SN_AUTH, trust_env=False)
        inc = api.post("/table/incident", json={"short_description": "x"}).json()["result"]
        api.patch(f"/table/incident/{inc['sys_id']}", json={"work_notes": "internal"})
        api.patch(f"/table/incident/{inc['sys_id']}", json={"short_description": "x"})  # no-op
        assert state.dispatcher.wait_idle(5)
        hits = receiver.wait_for(2)
        bodies = sorted((h.json() for h in hits), key=lambda b: b["sys_mod_count"])
        assert [(b["operation"], b["sys_mod_count"]) for b in bodies] == [
            ("insert", "0"),
            ("update", "1"),
        ]
        assert {b["sys_id"] for b in bodies} == {inc["sys_id"]}
        assert {b["number"] for b in bodies} == {inc["number"]}
        assert {b["table"] for b in bodies} == {"incident"}
        assert all(h.headers["x-ticketbridge-token"] == "t0ken" for h in hits)
        assert admin.post("/_sandbox/outbound", json={"enabled": "yes"}).status_code == 400
        api.close()
        admin.close()


def test_disconnect_fault_over_real_http(
    cw: httpx.Client, cw_server: tuple[SandboxServer, connectwise.ConnectWiseState]
) -> None:
    """Over a socket an injected disconnect is a broken response; apply_then_fail still writes."""
    server, state = cw_server
    admin = httpx.Client(base_url=server.url, trust_env=False)
    rule = {"method": "POST", "action": "apply_then_fail", "fail_with": "disconnect"}
    assert admin.post("/_sandbox/faults", json=rule).status_code == 201
    with pytest.raises(httpx.RemoteProtocolError):
        cw.post("/service/tickets", json={"summary": "half", "company": {"id": 1}})
    assert [t["summary"] for t in state.tickets.values()] == ["half"]
    assert cw.get("/service/tickets").status_code == 200
    admin.close()


def test_run_sandbox_serves_both_until_stopped() -> None:
    """run_sandbox starts both simulators, reports them, and returns when told to stop."""
    stop = threading.Event()
    ready: list[tuple[str, str]] = []

    def on_ready(servers: Mapping[str, SandboxServer]) -> None:
        ready.append((servers["connectwise"].url, servers["servicenow"].url))

    apps = {
        "connectwise": (connectwise.create_app(), 0),
        "servicenow": (servicenow.create_app(), 0),
    }
    thread = threading.Thread(
        target=run_sandbox, args=(apps,), kwargs={"on_ready": on_ready, "stop": stop}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready, "run_sandbox never became ready"
    cw_url, sn_url = ready[0]
    cw = httpx.get(f"{cw_url}{CW_API}/service/priorities", headers=CW_AUTH, trust_env=False)
    sn = httpx.get(f"{sn_url}/api/now/table/incident", auth=SN_AUTH, trust_env=False)
    assert (cw.status_code, sn.status_code) == (200, 200)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_concurrent_writes_keep_state_consistent(
    cw_server: tuple[SandboxServer, connectwise.ConnectWiseState],
) -> None:
    """HTTP clients and direct state calls from many threads: unique ids, nothing lost."""
    server, state = cw_server
    errors: list[BaseException] = []

    def http_worker(n: int) -> None:
        try:
            with httpx.Client(
                base_url=server.url + CW_API, headers=CW_AUTH, trust_env=False, timeout=10
            ) as client:
                for i in range(10):
                    ticket = create_ticket(client, summary=f"http {n}-{i}")
                    resp = client.post(
                        f"/service/tickets/{ticket['id']}/notes",
                        json={"text": "x", "detailDescriptionFlag": True},
                    )
                    assert resp.status_code == 201
        except BaseException as exc:
            errors.append(exc)

    def state_worker(n: int) -> None:
        try:
            for i in range(10):
                ticket = state.create_ticket({"summary": f"direct {n}-{i}", "company": {"id": 2}})
                state.add_note(ticket["id"], {"text": "y", "internalAnalysisFlag": True})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=http_worker, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=state_worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(state.tickets) == 80
    assert len(state.notes) == 80
    assert sorted(state.tickets) == list(range(1001, 1081))
    assert {n["ticketId"] for n in state.notes.values()} == set(state.tickets)
