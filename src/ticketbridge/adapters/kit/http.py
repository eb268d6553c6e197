"""The HTTP helper under every adapter.

It owns one ``httpx.AsyncClient`` per system, maps every failure to the
ticketbridge error tree (no httpx type escapes), and retries with tenacity:

* reads (``idempotent=True``) are retried on any transient failure;
* writes are retried only when the failure proves the request was not
  applied (connection refused, 429).  Any other write failure is raised as
  ``TransientError(uncertain=True)`` so the caller looks the write up on the
  target before sending it again.

``Retry-After`` (seconds or an HTTP date, parsed into a bounded number: see
:func:`parse_retry_after`) is waited out inside the call only when it is short
(at most ``RetrySettings.max_wait``); a longer one ends the call at once with
:class:`RateLimitedError` carrying it, so the caller (the outbox) parks only that
write and nothing sleeps on its behalf.

With a :class:`RequestBudget`, every request sent (each retry included) first
takes a token from it.  After a 429 the whole budget is held for a short
``Retry-After``; a long one holds it only for a brief probe pause, unless a second
429 comes while the first one's wait is still running, which shows the limit is the
whole system's: then every caller waits it out (see :meth:`RequestBudget.refused`).

A caller with a deadline (a write's lease) sets it with :func:`deadline`: no retry
starts unless its wait plus one request timeout still ends before the deadline, and
no call starts at all once it has passed.
"""

from __future__ import annotations

import email.utils
import functools
import math
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.errors import (
    AuthFailedError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)

__all__ = [
    "RETRY_AFTER_CEILING",
    "HttpClient",
    "RetrySettings",
    "deadline",
    "decode_json",
    "decode_write",
    "default_transport",
    "parse_retry_after",
]

#: The longest wait :func:`parse_retry_after` ever reports (a day); callers cap further.
RETRY_AFTER_CEILING = 86400.0

#: Seconds of a long ``Retry-After`` for which the whole budget pauses after a first 429
#: (see :meth:`RequestBudget.refused`).
PROBE_PAUSE = 1.0


@dataclass(frozen=True)
class RetrySettings:
    """How hard one call tries before giving up (the outbox retries later again).

    ``max_wait`` is the longest ``Retry-After`` waited out inside the call; a longer
    one ends the call, and the outbox parks the write for it instead.
    """

    attempts: int = 3
    wait_min: float = 0.5
    wait_max: float = 8.0
    max_wait: float = 5.0


_deadline: ContextVar[Callable[[], float] | None] = ContextVar(
    "ticketbridge_http_deadline", default=None
)


@contextmanager
def deadline(seconds_left: Callable[[], float]) -> Iterator[None]:
    """Calls made inside the block stop trying when ``seconds_left()`` runs out.

    No request is sent when it is 0 or less (``TransientError``, not uncertain: nothing
    was sent), a retry starts only when its wait plus the request timeout fits, and a
    request's timeout is cut to what is left, so no request outlives the deadline.
    """
    token = _deadline.set(seconds_left)
    try:
        yield
    finally:
        _deadline.reset(token)


def parse_retry_after(
    value: str | None, *, now: datetime | None = None, ceiling: float = RETRY_AFTER_CEILING
) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Always a finite number from 0 to ``ceiling``, or ``None`` when the value says
    nothing usable: ``inf``, ``1e12`` or a date years ahead give ``ceiling``, a
    negative value or a past date 0, ``nan`` or garbage ``None``.
    """
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        if when is None:  # pragma: no cover - Python < 3.10 returned None on garbage
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
        except OverflowError:  # pragma: no cover - aware datetimes subtract within range
            return ceiling
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), ceiling)


def _message(resp: httpx.Response) -> str:
    text = resp.text[:300].replace("\n", " ")
    return f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {text}"


#: Clients given no transport send through aiohttp (:mod:`.transport`: the same requests
#: for less CPU); ``False``: httpx's own stack (tests that mock that stack set this).
USE_AIOHTTP = True


def default_transport() -> httpx.AsyncBaseTransport | None:
    """The transport of a client given none (``None``: httpx's own)."""
    if not USE_AIOHTTP:
        return None
    from ticketbridge.adapters.kit.transport import AiohttpTransport

    return AiohttpTransport()


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> httpx.URL:
    return httpx.URL(text)


def _url(base: str, path: str, params: Mapping[str, Any] | None) -> httpx.URL:
    """``path`` under ``base`` (or ``path`` itself when absolute) with ``params`` as its
    query, as httpx's client makes it (params given replace a query in ``path``)."""
    text = path if path.startswith(("http://", "https://")) else f"{base}/{path.lstrip('/')}"
    if params:
        text = f"{text.partition('?')[0]}?{httpx.QueryParams(params)}"
    return _parsed(text)


class HttpClient:
    """A product's HTTP client: base URL, auth, headers, timeouts, retries, error mapping."""

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 20.0,
        retry: RetrySettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        self.system = system
        self.retry = retry or RetrySettings()
        self.timeout = timeout
        #: Shared by every client of this system; ``None``: unpaced.
        self.budget = budget
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport if transport is not None else default_transport(),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one request (with retries) and return a 2xx response or raise."""
        safe = method.upper() in {"GET", "HEAD"} if idempotent is None else idempotent

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, RateLimitedError):
                # a long Retry-After is not slept out here: the caller parks the write
                return exc.retry_after is None or exc.retry_after <= self.retry.max_wait
            if isinstance(exc, TransientError):
                return safe or not exc.uncertain
            return False

        # the first attempt outside the retry machinery (most requests need no retry, and
        # setting it up costs more CPU than the request); a failure worth retrying is
        # handed to it as its first attempt, so waits and limits are the same
        try:
            return await self._send(method, path, params=params, json=json, headers=headers)
        except Exception as exc:  # classified by should_retry, else re-raised
            if self.retry.attempts <= 1 or not should_retry(exc):
                raise
            first: BaseException | None = exc

        left = _deadline.get()
        attempts = stop_after_attempt(max(1, self.retry.attempts))

        def stop(state: RetryCallState) -> bool:
            if attempts(state):
                return True
            # no retry that could not finish before the caller's deadline
            return left is not None and left() < (state.upcoming_sleep or 0.0) + self.timeout

        retrying = AsyncRetrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception(should_retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await self._send(method, path, params=params, json=json, headers=headers)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry.max_wait)
        ceiling = min(self.retry.wait_max, self.retry.wait_min * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        where = f"{method} {path}"
        self._time_left(where)
        if self.budget is not None:
            await self.budget.acquire()
        try:
            resp = await self._client.send(
                self._build(method, path, params, json, headers, self._time_left(where))
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(
                f"{where}: cannot connect ({type(exc).__name__})",
                system=self.system,
                uncertain=False,
            ) from None
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"{where}: timed out ({type(exc).__name__})", system=self.system, uncertain=True
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"{where}: transport failed ({type(exc).__name__})",
                system=self.system,
                uncertain=True,
            ) from None
        status = resp.status_code
        if 200 <= status < 300:
            return resp
        if status == 429:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
            if self.budget is not None and retry_after is not None:
                if retry_after <= self.retry.max_wait:
                    self.budget.hold(retry_after)
                else:
                    self.budget.refused(retry_after, probe=PROBE_PAUSE)
            raise RateLimitedError(_message(resp), system=self.system, retry_after=retry_after)
        if status in (401, 403):
            raise AuthFailedError(_message(resp), system=self.system, status=status)
        if status == 404:
            raise NotFoundError(_message(resp), system=self.system, status=status)
        if status in (408, 425) or status >= 500:
            raise TransientError(_message(resp), system=self.system, status=status, uncertain=True)
        if 300 <= status < 400:
            raise PermanentError(
                f"{_message(resp)} (redirects are not followed)", system=self.system, status=status
            )
        raise PermanentError(_message(resp), system=self.system, status=status)

    def _build(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> httpx.Request:
        """The request ``AsyncClient.request`` would build, for a fraction of its CPU: the
        URL is put together as text and parsed once (httpx parses it three or four times
        on the way: base, merge, params), and a URL seen before is not parsed again."""
        merged = self._client.headers.copy()
        if headers:
            merged.update(headers)
        client = self._client
        return httpx.Request(
            method,
            _url(self._base, path, params),
            headers=merged,
            json=json,
            cookies=client.cookies if client.cookies else None,
            extensions={
                "timeout": (
                    client.timeout
                    if timeout is httpx.USE_CLIENT_DEFAULT
                    else httpx.Timeout(timeout)
                ).as_dict()
            },
        )

    def _time_left(self, where: str) -> Any:
        """This attempt's timeout: the client's, cut to the caller's deadline so no
        request outlives it; ``TransientError`` (nothing sent) once it has passed."""
        left = _deadline.get()
        if left is None:
            return httpx.USE_CLIENT_DEFAULT
        seconds = left()
        if seconds <= 0:
            raise TransientError(
                f"{where}: not sent, the caller's deadline has passed",
                system=self.system,
                uncertain=False,
            )
        return seconds if seconds < self.timeout else httpx.USE_CLIENT_DEFAULT

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and decode the JSON body; garbage is a transient error."""
        resp = await self.request(method, path, **kwargs)
        return decode_json(resp, self.system)

    async def write(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a write (never retried once it may have been applied) and return the JSON
        its 2xx answer carries; any other answer leaves the write unproven
        (:func:`decode_write`)."""
        resp = await self.request(method, path, idempotent=False, **kwargs)
        return decode_write(resp, self.system)


def decode_json(resp: httpx.Response, system: str) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        raise TransientError(
            f"{resp.request.method} {resp.request.url.path}: response is not JSON "
            f"({resp.headers.get('content-type', 'no content-type')})",
            system=system,
            status=resp.status_code,
            uncertain=resp.request.method not in ("GET", "HEAD"),
        ) from None


def decode_write(resp: httpx.Response, system: str) -> Any:
    """The JSON body of a 2xx answer to a write, which is what proves the write.

    A 2xx whose body is empty, not declared as JSON (an HTML maintenance page, a
    proxy's or a hibernating instance's answer) or not JSON at all proves nothing:
    the write may or may not have been applied, so it is a
    ``TransientError(uncertain=True)`` and the next attempt looks it up first.
    """
    where = f"{resp.request.method} {resp.request.url.path}"
    content_type = resp.headers.get("content-type", "")
    if not resp.content.strip():
        problem = "an empty body"
    elif "json" not in content_type.casefold():
        problem = f"a {content_type or 'untyped'} body, not JSON (a proxy or maintenance page?)"
    else:
        try:
            return resp.json()
        except ValueError:
            problem = "a body that is not valid JSON"
    raise TransientError(
        f"{where} answered {resp.status_code} with {problem}: the write is not proven",
        system=system,
        status=resp.status_code,
        uncertain=True,
    )
