"""The HTTP helper under every adapter.

It owns one ``httpx.AsyncClient`` per system, maps every failure to the
ticketbridge error tree (no httpx type escapes), and retries with tenacity:

* reads (``idempotent=True``) are retried on any transient failure;
* writes are retried only when the failure proves the request was not
  applied (connection refused, 429).  Any other write failure is raised as
  ``TransientError(uncertain=True)`` so the caller looks the write up on the
  target before sending it again.

``Retry-After`` (seconds or an HTTP date) is honoured, capped by
``RetrySettings.max_wait``.  With a :class:`RequestBudget`, every request sent
(each retry included) first takes a token from it, and a 429's ``Retry-After``
holds the whole budget, so every caller of that system waits, not only the refused one.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
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

__all__ = ["HttpClient", "RetrySettings", "decode_json", "decode_write", "parse_retry_after"]


@dataclass(frozen=True)
class RetrySettings:
    """How hard one call tries before giving up (the outbox retries later again)."""

    attempts: int = 3
    wait_min: float = 0.5
    wait_max: float = 8.0
    max_wait: float = 60.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _message(resp: httpx.Response) -> str:
    text = resp.text[:300].replace("\n", " ")
    return f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {text}"


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
        #: Shared by every client of this system; ``None``: unpaced.
        self.budget = budget
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport,
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
                return True
            if isinstance(exc, TransientError):
                return safe or not exc.uncertain
            return False

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=self._wait,
            retry=retry_if_exception(should_retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
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
        if self.budget is not None:
            await self.budget.acquire()
        try:
            resp = await self._client.request(
                method, path, params=params, json=json, headers=dict(headers or {})
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
                self.budget.hold(min(retry_after, self.retry.max_wait))
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
