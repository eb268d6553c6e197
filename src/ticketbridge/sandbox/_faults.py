"""Plumbing shared by the sandbox simulators.

* :class:`FaultPlan`: rules that make matching API requests fail on purpose
  (an error status with optional ``Retry-After``, a non-JSON 200 such as a
  maintenance page, a delay, a dropped connection, "apply then fail": the real
  operation runs and the client still sees a failure or a non-JSON 200, or
  "ignore fields": the named fields of a write are dropped before the product
  sees it, as a field ACL silently drops a field the caller may not write,
  and the product answers 2xx with the old value).
* :class:`RequestLog`: every API request with the status the client got, so
  tests and benchmarks can count calls (a client may name itself in the
  ``X-Sandbox-Client`` header to have its requests counted apart).
* :class:`SandboxMiddleware`: the ASGI middleware applying both.
* :func:`admin_router`: ``/_sandbox/faults`` and ``/_sandbox/requests``.
* :class:`OutboundDispatcher`: fire-and-forget HTTP POSTs (webhooks) from
  worker threads, each bounded by a timeout, failures logged and dropped.

Admin paths (``/_sandbox/...``) are never faulted nor logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ADMIN_PREFIX",
    "CLIENT_HEADER",
    "IGNORED_FIELDS_SCOPE_KEY",
    "DeliveryRecord",
    "ErrorRenderer",
    "FaultPlan",
    "FaultRule",
    "InjectedDisconnect",
    "OutboundDispatcher",
    "RequestLog",
    "RequestRecord",
    "SandboxMiddleware",
    "admin_router",
]

ADMIN_PREFIX = "/_sandbox"
#: Request header a client may set to name itself in the request log (e.g. a load generator).
CLIENT_HEADER = b"x-sandbox-client"
#: ASGI scope key naming the fields an ``ignore_fields`` fault drops from this request.
IGNORED_FIELDS_SCOPE_KEY = "sandbox.ignored_fields"

logger = logging.getLogger("ticketbridge.sandbox")

FaultAction = Literal[
    "status", "garbage", "delay", "disconnect", "apply_then_fail", "ignore_fields"
]

#: ``(status, rule body or None) -> (body bytes, content type)``: the simulator's error shape.
ErrorRenderer = Callable[[int, Any], tuple[bytes, str]]

_GARBAGE = (
    b"<html><head><title>502 Proxy Error</title></head>"
    b"<body><h1>Upstream temporarily unavailable</h1></body></html>"
)


class InjectedDisconnect(httpx.RemoteProtocolError):
    """Raised inside the app to drop the connection after the status line was sent.

    Behind a real server the client sees a connection closed mid-response;
    with an in-process transport it sees this exception, which is an
    ``httpx.TransportError`` like the real thing.
    """

    def __init__(self) -> None:
        super().__init__("peer closed connection without sending complete message body")


class FaultRule(BaseModel):
    """One fault: which requests it hits, what happens, and how often."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "*"
    path: str = ".*"
    action: FaultAction = "status"
    status: int = Field(default=500, ge=100, le=599)
    retry_after: str | None = None
    body: Any = None
    content_type: str | None = None
    delay: float = Field(default=0.0, ge=0.0, le=600.0)
    #: What ``apply_then_fail`` answers once the operation ran: an error status, a dropped
    #: connection, or a 200 with a non-JSON body (a proxy or maintenance page).
    fail_with: Literal["status", "disconnect", "garbage"] = "status"
    #: ``ignore_fields``: the write's fields to drop, top-level keys of a JSON object body
    #: or the ``path`` of JSON-Patch operations (``[{"op", "path", "value"}]``).
    fields: tuple[str, ...] = ()
    count: int | None = Field(default=1, ge=1)
    skip: int = Field(default=0, ge=0)

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("path")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"path is not a regular expression: {exc}") from None
        return value

    @field_validator("retry_after", mode="before")
    @classmethod
    def _retry_after(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(int(value))
        return value


@dataclass
class _Armed:
    rule: FaultRule
    regex: re.Pattern[str]
    seen: int = 0
    fired: int = 0

    @property
    def remaining(self) -> int | None:
        if self.rule.count is None:
            return None
        return max(0, self.rule.count - self.fired)


class FaultPlan:
    """The fault rules of one simulator; first matching armed rule wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Armed] = []

    def add(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> list[FaultRule]:
        parsed = [r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules]
        with self._lock:
            self._rules.extend(_Armed(rule, re.compile(rule.path)) for rule in parsed)
        return parsed

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule to apply to this request, counting it as used."""
        method = method.upper()
        with self._lock:
            for armed in self._rules:
                rule = armed.rule
                if rule.method not in ("*", method) or not armed.regex.search(path):
                    continue
                if armed.remaining == 0:
                    continue
                armed.seen += 1
                if armed.seen <= rule.skip:
                    continue
                armed.fired += 1
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**a.rule.model_dump(), "fired": a.fired, "remaining": a.remaining}
                for a in self._rules
            ]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int
    fault: str | None = None
    #: the ``X-Sandbox-Client`` header, None when not sent
    client: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "fault": self.fault,
            "client": self.client,
        }


class RequestLog:
    """API requests seen, oldest first (bounded).  ``status`` 0 means the connection dropped.

    Besides the bounded list, :meth:`totals` counts every request since the last
    :meth:`clear` by client and method, however many there were."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RequestRecord] = deque(maxlen=maxlen)
        self._totals: Counter[tuple[str | None, str]] = Counter()

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._items.append(record)
            self._totals[record.client, record.method] += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._totals.clear()

    def totals(self) -> list[dict[str, Any]]:
        """``[{"client", "method", "count"}]``: every request since the last clear."""
        with self._lock:
            return [
                {"client": client, "method": method, "count": count}
                for (client, method), count in sorted(
                    self._totals.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
                )
            ]

    def items(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        regex = re.compile(path) if path else None
        with self._lock:
            items = list(self._items)
        return [
            r
            for r in items
            if (method is None or r.method == method.upper())
            and (regex is None or regex.search(r.path))
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.items(method, path))


class SandboxMiddleware:
    """Applies the fault plan to API requests and logs them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        plan: FaultPlan,
        log: RequestLog,
        error_renderer: ErrorRenderer,
    ) -> None:
        self.app = app
        self.plan = plan
        self.log = log
        self.error_renderer = error_renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        path = str(scope["path"])
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        client = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == CLIENT_HEADER),
            None,
        )
        rule = self.plan.take(method, path)
        seen = {"status": 0}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            await send(message)

        async def discard(message: Message) -> None:
            return None

        try:
            if rule is None:
                await self.app(scope, receive, tracking_send)
            elif rule.action == "delay":
                await asyncio.sleep(rule.delay)
                await self.app(scope, receive, tracking_send)
            elif rule.action == "status":
                await self._send_error(rule, tracking_send)
            elif rule.action == "garbage":
                await self._send_garbage(rule, tracking_send)
            elif rule.action == "disconnect":
                await self._disconnect(send)
            elif rule.action == "ignore_fields":
                body = _without_fields(await _read_body(receive), rule.fields)
                scope = {**scope, IGNORED_FIELDS_SCOPE_KEY: frozenset(rule.fields)}
                await self.app(scope, _replay(body, receive), tracking_send)
            else:  # apply_then_fail
                await self.app(scope, receive, discard)
                if rule.fail_with == "disconnect":
                    await self._disconnect(send)
                elif rule.fail_with == "garbage":
                    await self._send_garbage(rule, tracking_send)
                else:
                    await self._send_error(rule, tracking_send)
        finally:
            self.log.add(
                RequestRecord(
                    method, path, query, seen["status"], rule.action if rule else None, client
                )
            )

    async def _send_error(self, rule: FaultRule, send: Send) -> None:
        if isinstance(rule.body, str):
            body, content_type = rule.body.encode(), "text/plain; charset=utf-8"
        else:
            body, content_type = self.error_renderer(rule.status, rule.body)
        headers = [(b"content-type", (rule.content_type or content_type).encode())]
        if rule.retry_after is not None:
            headers.append((b"retry-after", rule.retry_after.encode()))
        await _send_whole(send, rule.status, headers, body)

    async def _send_garbage(self, rule: FaultRule, send: Send) -> None:
        body = rule.body.encode() if isinstance(rule.body, str) else _GARBAGE
        content_type = rule.content_type or "text/html; charset=utf-8"
        await _send_whole(send, 200, [(b"content-type", content_type.encode())], body)

    async def _disconnect(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
        raise InjectedDisconnect()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` once, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _without_fields(body: bytes, fields: Iterable[str]) -> bytes:
    """The JSON object ``body`` without the keys ``fields``; anything else passes unchanged
    (a simulator taking other bodies, such as JSON-Patch arrays, reads the fields from
    ``scope[IGNORED_FIELDS_SCOPE_KEY]`` and skips them itself)."""
    dropped = set(fields)
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not isinstance(payload, dict):
        return body
    return json.dumps({k: v for k, v in payload.items() if k not in dropped}).encode()


async def _send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def admin_router(plan: FaultPlan, log: RequestLog) -> APIRouter:
    """``/_sandbox/faults`` (GET, POST a rule or a list of rules, DELETE), ``/_sandbox/requests``
    and ``/_sandbox/requests/totals`` (counts by client and method since the last DELETE)."""
    router = APIRouter(prefix=ADMIN_PREFIX)

    @router.get("/faults")
    async def list_faults() -> JSONResponse:
        return JSONResponse(plan.describe())

    @router.post("/faults")
    async def add_faults(request: Request) -> JSONResponse:
        try:
            payload = json.loads(await request.body() or b"null")
        except ValueError:
            return JSONResponse({"detail": "body is not JSON"}, status_code=400)
        rules = payload if isinstance(payload, list) else [payload]
        try:
            added = plan.add(rules)
        except (ValidationError, TypeError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse({"added": [r.model_dump() for r in added]}, status_code=201)

    @router.delete("/faults")
    async def clear_faults() -> Response:
        plan.clear()
        return Response(status_code=204)

    @router.get("/requests")
    async def list_requests(method: str | None = None, path: str | None = None) -> JSONResponse:
        try:
            items = log.items(method, path)
        except re.error as exc:
            return JSONResponse({"detail": f"bad path regex: {exc}"}, status_code=400)
        return JSONResponse([r.to_json() for r in items])

    @router.get("/requests/totals")
    async def request_totals() -> JSONResponse:
        return JSONResponse(log.totals())

    @router.delete("/requests")
    async def clear_requests() -> Response:
        log.clear()
        return Response(status_code=204)

    return router


# -- outbound delivery ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One outbound POST: ``status`` is None when it failed or was dropped."""

    url: str
    at: str
    status: int | None
    error: str | None = None
    dropped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "at": self.at,
            "status": self.status,
            "error": self.error,
            "dropped": self.dropped,
        }


@dataclass(frozen=True, slots=True)
class _Job:
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


class OutboundDispatcher:
    """Fire-and-forget POSTs from daemon worker threads.

    ``submit`` never blocks on the network; each POST is bounded by
    ``timeout``; failures are logged and dropped (no retry).  Whether a
    delivery is dropped on purpose (``enabled``/``drop_rate``) is decided at
    submit time from a seeded RNG, so runs are reproducible.
    """

    def __init__(self, *, timeout: float = 5.0, workers: int = 4, seed: int = 0) -> None:
        self.timeout = timeout
        self.enabled = True
        self.drop_rate = 0.0
        self._workers = max(1, workers)
        self._rng = random.Random(seed)  # noqa: S311 - reproducible drops, not secrets
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pending = 0
        self._records: deque[DeliveryRecord] = deque(maxlen=10_000)
        self._client: httpx.Client | None = None

    def configure(self, *, enabled: bool | None = None, drop_rate: float | None = None) -> None:
        with self._lock:
            if enabled is not None:
                self.enabled = enabled
            if drop_rate is not None:
                if not 0.0 <= drop_rate <= 1.0:
                    raise ValueError("drop_rate must be within 0..1")
                self.drop_rate = drop_rate

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return {"enabled": self.enabled, "drop_rate": self.drop_rate, "timeout": self.timeout}

    def submit(self, url: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """Queue a POST; False when it was dropped on purpose (disabled, drop rate)."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            drop = not self.enabled or (
                self.drop_rate > 0.0 and self._rng.random() < self.drop_rate
            )
            if drop:
                self._records.append(DeliveryRecord(url, now, None, "dropped", dropped=True))
                return False
            self._ensure_started()
            self._pending += 1
        self._queue.put(_Job(url, body, tuple(headers.items())))
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def records(self) -> list[DeliveryRecord]:
        with self._lock:
            return list(self._records)

    def close(self) -> None:
        """Finish queued deliveries and stop the workers; a later submit starts new ones."""
        with self._lock:
            threads, self._threads = self._threads, []
            client, self._client = self._client, None
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout=self.timeout + 1.0)
        if client is not None:
            client.close()

    def _ensure_started(self) -> None:
        if self._threads:
            return
        client = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False)
        self._client = client
        for n in range(self._workers):
            thread = threading.Thread(
                target=self._run, args=(client,), name=f"sandbox-outbound-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, client: httpx.Client) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._deliver(client, job)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, client: httpx.Client, job: _Job) -> None:
        at = datetime.now(UTC).isoformat()
        try:
            resp = client.post(job.url, content=job.body, headers=dict(job.headers))
        except (httpx.HTTPError, RuntimeError) as exc:
            logger.info("outbound POST to %s failed: %s", job.url, exc)
            record = DeliveryRecord(job.url, at, None, f"{type(exc).__name__}: {exc}")
        else:
            if resp.status_code >= 300:
                logger.info("outbound POST to %s answered %s", job.url, resp.status_code)
            record = DeliveryRecord(job.url, at, resp.status_code)
        with self._lock:
            self._records.append(record)
