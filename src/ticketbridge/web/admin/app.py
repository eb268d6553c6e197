"""The operator's dashboard: server-rendered pages on the admin listener.

Pages read the store through :mod:`ticketbridge.store.dashboard` on the store's
threads (never on the event loop), one page of rows at a time.  Each response carries
its style sheet and its few lines of script inline under a per-response nonce, so the
dashboard works with no network beyond this listener, and the content security policy
allows nothing else to run.  The actions (retry or cancel a dead letter, close a review)
are POST forms guarded as :mod:`ticketbridge.web.admin.auth` describes; a closeout is only
shown (applying one stays ``ticketbridge closeout``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Protocol
from urllib.parse import parse_qs, urlencode

import structlog
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketbridge import __version__
from ticketbridge.clock import Clock
from ticketbridge.closeout_report import build_report, render_html
from ticketbridge.incident_review import (
    ReviewIdError,
    build_review,
    close_review,
    parse_review_id,
    policy_lookup,
)
from ticketbridge.incident_review import render as render_review
from ticketbridge.report import Report, collect
from ticketbridge.store import dashboard as queries
from ticketbridge.store import dashboard_records as records
from ticketbridge.store import reconcile as reconcile_store
from ticketbridge.store import repo
from ticketbridge.timeline import build_timeline
from ticketbridge.web.admin import pages
from ticketbridge.web.admin.auth import SESSION_COOKIE, Authenticator, Principal, same_origin
from ticketbridge.web.admin.charts import bar_chart
from ticketbridge.web.admin.clocks import read_clock
from ticketbridge.web.admin.documents import document_body
from ticketbridge.web.admin.scorecards import ScorecardCache
from ticketbridge.web.admin.systems import system_health
from ticketbridge.web.parts import DaemonParts

__all__ = ["AdminService", "create_admin_app"]

log = structlog.get_logger("ticketbridge.admin")


class AdminService(DaemonParts, Protocol):
    """What the dashboard reads from: the running daemon's parts."""

    @property
    def clock(self) -> Clock: ...


class LinkState(StrEnum):
    open = "open"
    watching = "watching"
    creating = "creating"
    closed = "closed"
    any = "any"


class BallFilter(StrEnum):
    any = "any"
    vendor = "vendor"
    msp = "msp"
    client = "client"
    resolved = "resolved"


class YesNo(StrEnum):
    any = "any"
    yes = "yes"
    no = "no"

    @property
    def flag(self) -> bool | None:
        return None if self is YesNo.any else self is YesNo.yes


class ReviewState(StrEnum):
    any = "any"
    open = "open"
    closed = "closed"


class ReviewKind(StrEnum):
    any = "any"
    lessons = records.LESSONS
    investigations = records.INVESTIGATIONS


class CloseoutState(StrEnum):
    any = "any"
    closing = "closing"
    done = "done"


#: How far back the overview sums up what the scheduled reconcile recovered.
RECONCILE_WINDOW = timedelta(days=7)

#: Paths anyone may ask for (the sign-in page itself).
_OPEN_PATHS = frozenset({"/login"})


def _csp(nonce: str) -> str:
    return (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def create_admin_app(service: AdminService, auth: Authenticator) -> FastAPI:
    app = FastAPI(
        title="ticketbridge admin",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    config = service.config
    store = service.store
    page_size = config.admin.page_size

    def compute_scorecards() -> Report:
        now = service.clock.now()
        since = now - timedelta(seconds=config.admin.scorecard_window)
        return collect(store, config, since=since, now=now)

    scorecards = ScorecardCache(
        compute_scorecards,
        ttl=float(config.admin.scorecard_refresh),
        clock=service.clock.now,
        timer=time.monotonic,
    )
    app.state.scorecards = scorecards

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        principal: Principal | None = getattr(request.state, "principal", None)
        body = pages.render(
            template,
            request_path=request.url.path,
            nonce=nonce,
            now=service.clock.now(),
            principal=principal,
            csrf=auth.form_token(),
            version=__version__,
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        response.headers["Content-Security-Policy"] = _csp(nonce)
        return response

    def refused(request: Request) -> Response:
        if request.url.path == "/metrics" or "text/html" not in request.headers.get("accept", ""):
            response: Response = Response(
                "sign in: Authorization: Bearer <admin.token> or basic auth\n",
                status_code=401,
                media_type="text/plain",
            )
        else:
            response = page(request, "login.html", status=401, error=None, next=_next(request))
        response.headers["WWW-Authenticate"] = auth.challenge
        return response

    @app.middleware("http")
    async def signed_in(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        principal = auth.principal(request)
        request.state.principal = principal
        if principal is None and request.url.path not in _OPEN_PATHS:
            return refused(request)
        if principal is not None and scorecards.last is None:
            scorecards.refresh()  # the first use starts the slow figures
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ())[1:])}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return page(request, "error.html", status=400, title="Bad request", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return page(
            request, "error.html", status=exc.status_code, title=str(exc.detail), problems=[]
        )

    # -- sign-in ---------------------------------------------------------------------
    @app.get("/login")
    async def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", error=None, next=_safe_next(next))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = _safe_next(str(form.get("next") or "/"))
        if not same_origin(request):
            return page(request, "login.html", status=403, error="cross-site sign-in", next=target)
        token = str(form.get("token") or "")
        user = str(form.get("username") or "")
        password = str(form.get("password") or "")
        name = None
        if token and auth.check_token(token):
            name = "token"
        elif user and auth.check_password(user, password):
            name = user
        if name is None:
            log.warning("admin_sign_in_refused", client=_client(request))
            return page(
                request,
                "login.html",
                status=401,
                error="not signed in: wrong token or password",
                next=target,
            )
        log.info("admin_signed_in", user=name, client=_client(request))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            auth.session_cookie(name),
            max_age=int(auth.session_seconds),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await _form(request)
        problem = auth.form_allowed(request, request.state.principal, _str(form.get("csrf")))
        if problem:
            return page(request, "error.html", status=403, title=problem, problems=[])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- pages -----------------------------------------------------------------------
    @app.get("/")
    async def overview(request: Request) -> HTMLResponse:
        since = service.clock.now() - RECONCILE_WINDOW

        def work(conn: Any) -> tuple[queries.Overview, reconcile_store.ReconcileTotals]:
            return queries.overview(conn), reconcile_store.totals(conn, since=since)

        counts, recovered = await store.run(work)
        systems = await _systems()
        return page(
            request,
            "overview.html",
            counts=counts,
            systems=systems,
            recovered=recovered,
            recovered_since=since,
        )

    @app.get("/links")
    async def links_page(
        request: Request,
        state: LinkState = LinkState.open,
        vendor: Annotated[str | None, Query(max_length=64)] = None,
        client: Annotated[str | None, Query(max_length=128)] = None,
        ball: BallFilter = BallFilter.any,
        breached: YesNo = YesNo.any,
        escalated: YesNo = YesNo.any,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        if vendor and vendor not in config.systems:
            known = ", ".join(sorted({c.vendor for c in config.connections})) or "none"
            return page(
                request,
                "error.html",
                status=400,
                title="Bad request",
                problems=[f"vendor: unknown system {vendor!r} (one of: {known})"],
            )
        f = queries.LinkFilter(
            state=None if state is LinkState.any else state.value,
            vendor=vendor or None,
            client=client or None,
            ball=None if ball is BallFilter.any else ball.value,
            breached=breached.flag,
            escalated=escalated.flag,
        )
        at = queries.Page(page_number, page_size)

        def work(conn: Any) -> tuple[int, list[queries.LinkLine], list[str], list[str]]:
            total = queries.count_links(conn, f)
            lines = queries.page_links(conn, f, at)
            vendor_names, clients = queries.filter_choices(conn)
            return total, lines, vendor_names, clients

        total, lines, vendor_names, clients = await store.run(work)
        params = {
            "state": state.value,
            "vendor": vendor or "",
            "client": client or "",
            "ball": ball.value,
            "breached": breached.value,
            "escalated": escalated.value,
        }
        rows = [(line, read_clock(line.clock_state)) for line in lines]
        return page(
            request,
            "links.html",
            rows=rows,
            total=total,
            pager=_pager("/links", params, at, total),
            params=params,
            vendors=sorted(set(vendor_names) | {c.vendor for c in config.connections}),
            clients=clients,
            states=[s.value for s in LinkState],
            balls=[b.value for b in BallFilter],
            yesno=[y.value for y in YesNo],
        )

    @app.get("/links/{link_id}")
    async def link_page(request: Request, link_id: int) -> HTMLResponse:
        def work(conn: Any) -> tuple[Any, list[Any]] | None:
            found = queries.link_detail(conn, link_id)
            if found is None:
                return None
            return found, build_timeline(conn, link_id)

        result = await store.run(work)
        if result is None:
            return page(
                request, "error.html", status=404, title=f"link {link_id} not found", problems=[]
            )
        (link, clock_row), entries = result
        clock = read_clock(clock_row["state"]) if clock_row else None
        return page(
            request, "link.html", link=link, clock_row=clock_row, clock=clock, entries=entries
        )

    @app.get("/clocks")
    async def clocks_page(
        request: Request,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        at = queries.Page(page_number, page_size)
        total, lines = await store.run(lambda c: queries.running_clocks(c, at))
        rows = [(line, read_clock(line.state)) for line in lines]
        return page(
            request, "clocks.html", rows=rows, total=total, pager=_pager("/clocks", {}, at, total)
        )

    @app.get("/scorecards")
    async def scorecards_page(request: Request) -> HTMLResponse:
        computed = await scorecards.get()
        report = computed.report
        totals = [r for r in report.rows if r.priority == "all"]
        charts = [
            bar_chart(
                "Compliance % (tickets with a target)",
                [(r.vendor, r.compliance_pct) for r in totals],
                fmt=lambda v: f"{v:.1f} %",
                scale_max=100,
            ),
            bar_chart(
                "Acknowledgment, median (minutes)",
                [
                    (r.vendor, None if r.ack_median is None else r.ack_median.total_seconds() / 60)
                    for r in totals
                ],
                fmt=lambda v: f"{v:.0f} min",
            ),
            bar_chart(
                "Resolution, median (hours)",
                [
                    (
                        r.vendor,
                        None
                        if r.resolution_median is None
                        else r.resolution_median.total_seconds() / 3600,
                    )
                    for r in totals
                ],
                fmt=lambda v: f"{v:.1f} h",
            ),
            bar_chart(
                "Breaches",
                [
                    (r.vendor, None if r.breach_count is None else float(r.breach_count))
                    for r in totals
                ],
                fmt=lambda v: f"{v:.0f}",
            ),
        ]
        return page(request, "scorecards.html", report=report, charts=charts, computed=computed)

    @app.get("/dead-letters")
    async def dead_letters_page(
        request: Request,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
        done: str | None = None,
    ) -> HTMLResponse:
        at = queries.Page(page_number, page_size)
        total, letters = await store.run(lambda c: queries.dead_letters(c, at))
        return page(
            request,
            "dead_letters.html",
            letters=letters,
            total=total,
            done=done,
            pager=_pager("/dead-letters", {}, at, total),
        )

    async def outbox_action(request: Request, row_id: int, action: str) -> Response:
        form = await _form(request)
        problem = auth.form_allowed(request, request.state.principal, _str(form.get("csrf")))
        if problem:
            return page(request, "error.html", status=403, title=problem, problems=[])
        now = service.clock.now()

        def work(conn: Any) -> tuple[bool, Any]:
            row = queries.outbox_row(conn, row_id)
            if row is None:
                return False, None
            if action == "retry":
                changed = repo.outbox_requeue(conn, row_id, now)
            else:
                changed = repo.outbox_cancel(conn, row_id)
            return changed, row

        changed, row = await store.run(work)
        if row is None:
            return page(
                request, "error.html", status=404, title=f"write {row_id} not found", problems=[]
            )
        if not changed:
            return page(
                request,
                "error.html",
                status=409,
                title=f"write {row_id} is {row.state}: only a dead letter can be "
                + ("retried" if action == "retry" else "cancelled"),
                problems=[],
            )
        principal: Principal = request.state.principal
        log.info(f"admin_outbox_{action}", row=row_id, link_id=row.link_id, user=principal.name)
        if action == "retry":
            service.engine.wake.set()
        word = "retried" if action == "retry" else "cancelled"
        return RedirectResponse(f"/dead-letters?{urlencode({'done': f'{word} {row_id}'})}", 303)

    @app.post("/dead-letters/{row_id}/retry")
    async def retry(request: Request, row_id: int) -> Response:
        return await outbox_action(request, row_id, "retry")

    @app.post("/dead-letters/{row_id}/cancel")
    async def cancel(request: Request, row_id: int) -> Response:
        return await outbox_action(request, row_id, "cancel")

    # -- reviews -----------------------------------------------------------------------
    @app.get("/reviews")
    async def reviews_page(
        request: Request,
        state: ReviewState = ReviewState.any,
        kind: ReviewKind = ReviewKind.any,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        f = records.ReviewFilter(
            state=None if state is ReviewState.any else state.value,
            kind=None if kind is ReviewKind.any else kind.value,
        )
        at = queries.Page(page_number, page_size)

        def work(conn: Any) -> tuple[int, list[records.ReviewLine]]:
            return records.count_reviews(conn, f), records.page_reviews(conn, f, at)

        total, lines = await store.run(work)
        params = {"state": state.value, "kind": kind.value}
        return page(
            request,
            "reviews.html",
            lines=lines,
            total=total,
            pager=_pager("/reviews", params, at, total),
            params=params,
            states=[s.value for s in ReviewState],
            kinds=[k.value for k in ReviewKind],
        )

    @app.get("/reviews/{review_id}")
    async def review_page(request: Request, review_id: str, done: str | None = None) -> Response:
        try:
            parse_review_id(review_id)
        except ReviewIdError as exc:
            return page(request, "error.html", status=404, title=str(exc), problems=[])
        now = service.clock.now()
        policy = policy_lookup(config)
        review = await store.run(lambda c: build_review(c, review_id, now=now, policy=policy))
        if review is None:
            return page(
                request,
                "error.html",
                status=404,
                title=f"review {review_id} not found",
                problems=[],
            )
        if review.id != review_id:  # ll-3, LL-03: the page's one address
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/reviews/{review.id}{query}", status_code=308)
        document = document_body(render_review(review, "html"))
        return page(request, "review.html", review=review, document=document, done=done)

    @app.post("/reviews/{review_id}/close")
    async def review_close(request: Request, review_id: str) -> Response:
        form = await _form(request)
        problem = auth.form_allowed(request, request.state.principal, _str(form.get("csrf")))
        if problem:
            return page(request, "error.html", status=403, title=problem, problems=[])
        try:
            parse_review_id(review_id)
        except ReviewIdError as exc:
            return page(request, "error.html", status=404, title=str(exc), problems=[])
        findings = (_str(form.get("findings")) or "").strip() or None
        now = service.clock.now()
        closed = await store.run(lambda c: close_review(c, review_id, now=now, findings=findings))
        if closed is None:
            return page(
                request,
                "error.html",
                status=404,
                title=f"review {review_id} not found",
                problems=[],
            )
        if not closed:
            return page(
                request,
                "error.html",
                status=409,
                title=f"review {review_id} is already closed",
                problems=[],
            )
        principal: Principal = request.state.principal
        log.info("admin_review_closed", review=review_id, user=principal.name)
        return RedirectResponse(f"/reviews/{review_id}?{urlencode({'done': 'closed'})}", 303)

    # -- closeouts ---------------------------------------------------------------------
    @app.get("/closeouts")
    async def closeouts_page(
        request: Request,
        state: CloseoutState = CloseoutState.any,
        client: Annotated[str | None, Query(max_length=128)] = None,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        f = records.CloseoutFilter(
            state=None if state is CloseoutState.any else state.value, client=client or None
        )
        at = queries.Page(page_number, page_size)

        def work(conn: Any) -> tuple[int, list[records.CloseoutLine], list[str]]:
            return (
                records.count_closeouts(conn, f),
                records.page_closeouts(conn, f, at),
                records.closeout_clients(conn),
            )

        total, lines, clients = await store.run(work)
        params = {"state": state.value, "client": client or ""}
        return page(
            request,
            "closeouts.html",
            lines=lines,
            total=total,
            pager=_pager("/closeouts", params, at, total),
            params=params,
            states=[s.value for s in CloseoutState],
            clients=clients,
        )

    @app.get("/closeouts/{closeout_id}")
    async def closeout_page(request: Request, closeout_id: int) -> HTMLResponse:
        detail = await store.run(lambda c: records.closeout_detail(c, closeout_id))
        if detail is None:
            return page(
                request,
                "error.html",
                status=404,
                title=f"closeout {closeout_id} not found",
                problems=[],
            )
        document = None
        if detail.latest == closeout_id:
            # the report reads the client's tenure-long scorecard: off the event loop and
            # off the store's threads, like the scorecards page
            report = await asyncio.to_thread(
                build_report,
                store,
                config,
                service.adapters,
                detail.closeout.client,
                now=service.clock.now(),
            )
            document = document_body(render_html(report))
        return page(request, "closeout.html", detail=detail, document=document)

    async def _systems() -> list[Any]:
        cursors = await store.run(queries.cursor_times)
        return system_health(
            config=config,
            adapters=service.adapters,
            polls=service.engine.health,
            registry=service.health,
            cursors=cursors,
        )

    @app.get("/health")
    async def health_page(request: Request) -> HTMLResponse:
        return page(request, "health.html", systems=await _systems())

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        """No icon: an empty answer instead of a 404 in every browser console."""
        return Response(status_code=204)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _pager(path: str, params: Mapping[str, str], at: queries.Page, total: int) -> dict[str, Any]:
    pages_count = max(1, -(-total // at.size))
    number = min(at.number, pages_count)

    def href(n: int) -> str:
        return f"{path}?{urlencode({**params, 'page': n})}"

    return {
        "number": number,
        "count": pages_count,
        "first": at.offset + 1 if total else 0,
        "last": min(at.offset + at.size, total),
        "total": total,
        "prev": href(number - 1) if number > 1 else None,
        "next": href(number + 1) if number < pages_count else None,
    }


def _safe_next(value: str) -> str:
    """Only a path of this listener (no ``//host`` or scheme): no open redirect."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _next(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return _safe_next(request.url.path + query)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


#: The largest form body read (the dashboard's forms hold a few short fields).
MAX_FORM = 16_384


async def _form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the only kind the pages send), first value of
    each; an empty form for anything else or anything larger than :data:`MAX_FORM`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None
