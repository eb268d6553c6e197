"""FastAPI app: ``/webhooks/{system}``, ``/healthz``, ``/readyz``, ``/metrics``.

Webhooks are hints: verify, persist, answer 202 fast; the engine re-reads the
ticket through the API.  Store calls run on the store's threads, never on the
event loop.  A forged, replayed or malformed webhook changes nothing and gets a 4xx.

Intake is bounded: what the headers and query alone can refuse (a missing or
wrong shared token, a missing signature) is refused before the body is read;
the body is streamed and refused with 413 as soon as it passes
``server.max_body`` (announced or not: chunked uploads carry no
Content-Length), so at most the cap plus one chunk is ever held; a body too
deeply nested to parse is a 400; a client that hangs up mid-upload is a debug
line.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect

from ticketbridge import __version__
from ticketbridge.domain import WebhookRequest
from ticketbridge.errors import WebhookError, WebhookPayloadError
from ticketbridge.store import repo
from ticketbridge.web.parts import DaemonParts

__all__ = ["Service", "create_app"]

log = structlog.get_logger("ticketbridge.web")


class _TooLarge(Exception):
    """The webhook body passed the configured cap."""


async def read_capped(request: Request, cap: int) -> bytes:
    """The request body, read chunk by chunk; ``_TooLarge`` as soon as it passes ``cap``
    bytes, without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Service(DaemonParts, Protocol):
    """What the web app serves from: the running daemon's parts."""

    @property
    def stopping(self) -> bool: ...


def create_app(daemon: Service) -> FastAPI:
    app = FastAPI(
        title="ticketbridge", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    engine = daemon.engine
    metrics = daemon.metrics
    max_body = daemon.config.server.max_body
    health = daemon.health

    def record(system: str, what: str) -> None:
        """Count a webhook request and note it for the dashboard's system health."""
        metrics.webhooks.labels(system, what).inc()
        health.webhook(system, what)

    async def webhook(request: Request) -> JSONResponse:
        """``POST /webhooks/{system}``: a plain Starlette route (the hot path: FastAPI's
        parameter solving would cost more CPU than the rest of the intake)."""
        system: str = request.path_params["system"]
        if daemon.stopping:
            return JSONResponse({"error": "shutting down"}, status_code=503)
        adapter = daemon.adapters.get(system)
        if adapter is None:
            metrics.webhooks.labels("unknown", "unknown_system").inc()
            return JSONResponse({"error": "unknown system"}, status_code=404)
        client = request.client.host if request.client else None

        def refused(exc: WebhookError) -> JSONResponse:
            outcome = "unauthorized" if exc.status_code == 401 else "malformed"
            if exc.status_code == 503:
                outcome = "unavailable"
            record(system, outcome)
            log.warning(
                "webhook_refused",
                system=system,
                reason=str(exc),
                status=exc.status_code,
                client=client,
            )
            return JSONResponse({"error": str(exc)}, status_code=exc.status_code)

        def too_large() -> JSONResponse:
            record(system, "too_large")
            log.info("webhook_too_large", system=system, max_body=max_body, client=client)
            return JSONResponse({"error": "body too large"}, status_code=413)

        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        try:
            adapter.webhook_precheck(headers, query)
        except WebhookError as exc:
            return refused(exc)
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return too_large()
        try:
            body = await read_capped(request, max_body)
        except _TooLarge:
            return too_large()
        except ClientDisconnect:
            record(system, "aborted")
            log.debug("webhook_client_disconnected", system=system, client=client)
            return JSONResponse({"error": "client disconnected"}, status_code=400)
        hook = WebhookRequest(headers=headers, query=query, body=body)
        try:
            hints = await adapter.webhook_hints(hook)
        except WebhookError as exc:
            return refused(exc)
        except RecursionError:
            return refused(WebhookPayloadError("webhook body is nested too deeply"))
        accepted = 0
        for hint in hints:
            if await engine.add_hint(system, hint.ticket_id, hint.delivery_key, ticket=hint.ticket):
                accepted += 1
        record(system, "accepted" if accepted else "duplicate")
        log.info("webhook_accepted", system=system, hints=len(hints), new=accepted)
        return JSONResponse(
            {"accepted": accepted, "duplicates": len(hints) - accepted}, status_code=202
        )

    app.add_route("/webhooks/{system}", webhook, methods=["POST"])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """200 when the store answers and every system's last poll worked and no write is
        dead-lettered; 503 otherwise, with ``degraded`` saying why.

        Dead letters make the daemon degraded, not broken: a dead write holds up the
        later writes of its own ticket and target until an operator retries or cancels
        it (``ticketbridge outbox``); everything else keeps flowing."""
        store_ok = await daemon.store.call(daemon.store.ping)
        dead = 0
        if store_ok:
            try:
                dead = (await daemon.store.run(repo.outbox_depth)).get("dead", 0)
            except Exception as exc:  # noqa: BLE001 - reported as a store failure
                log.warning("readyz_store_failed", error=str(exc))
                store_ok = False
        metrics.dead_letters.set(dead)
        systems: dict[str, Any] = {}
        degraded: list[str] = []
        if not store_ok:
            degraded.append("store unreachable")
        if daemon.stopping:
            degraded.append("shutting down")
        if dead:
            degraded.append(f"{dead} dead-lettered write(s): see `ticketbridge outbox list`")
        ready = store_ok and not daemon.stopping and not dead
        for name, health in engine.health.items():
            systems[name] = {
                "ok": health.ok,
                "last_poll_at": health.last_at.isoformat() if health.last_at else None,
                "last_ok_at": health.last_ok_at.isoformat() if health.last_ok_at else None,
                "error": health.last_error,
            }
            if health.ok is not True:
                ready = False
                degraded.append(
                    f"{name}: last poll failed"
                    if health.ok is False
                    else (f"{name}: not polled yet")
                )
        body = {
            "ready": ready,
            "store": store_ok,
            "dead_letters": dead,
            "degraded": degraded,
            "systems": systems,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    if daemon.config.server.metrics:

        @app.get("/metrics")
        async def metrics_endpoint() -> Response:
            return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
