"""ConnectWise PSA callbacks: verify the signature, say which ticket changed.

A callback's JSON body names a signing key URL (``Metadata.key_url``); the
``x-content-signature`` header carries ``base64(HMAC-SHA256(sha256(key), body))``.
Key URLs are fetched only from the configured API's own host and port, the
ConnectWise cloud API hosts and the system's ``allowed_key_hosts``, never
following redirects.

Anyone can post a callback naming an allowed key URL, so key fetches are bounded:

* keys are cached per URL for ``KEY_TTL``; a failed fetch is remembered for
  ``KEY_FAILURE_TTL`` (forged callbacks naming a key that does not exist cost one
  fetch, not one each);
* a callback that does not verify under a cached key re-fetches it once (a key
  rotated in place), and again only ``KEY_REFRESH_AFTER`` later, so a stream of
  forged signatures costs at most one fetch a minute per key URL;
* concurrent callbacks share one fetch per URL;
* at most ``KEY_FETCHES_PER_MINUTE`` fetches a minute across every URL; past
  that a callback needing a fetch is refused with 503 (ConnectWise retries
  later; polling is the backstop) and a warning is logged once per burst.

A new key (ConnectWise names a new key URL when it rotates) is fetched at its
first callback, within the budget.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ticketbridge.adapters.kit.payload import text_or_none, webhook_json
from ticketbridge.domain import Ticket, WebhookHint, WebhookRequest
from ticketbridge.errors import WebhookAuthError, WebhookPayloadError, WebhookUnavailableError

__all__ = ["CLOUD_KEY_HOSTS", "CallbackVerifier", "signature"]

#: ConnectWise cloud hosts that serve callback signing keys.
CLOUD_KEY_HOSTS = frozenset(
    {
        "api-na.myconnectwise.net",
        "api-eu.myconnectwise.net",
        "api-au.myconnectwise.net",
        "na.myconnectwise.net",
        "eu.myconnectwise.net",
        "au.myconnectwise.net",
    }
)
#: ConnectWise gives up on a callback after 5 s; so do we when fetching its key.
KEY_FETCH_TIMEOUT = 5.0
#: Signing keys (and failed fetches) remembered, one per key URL.
KEY_CACHE_SIZE = 32
#: How long a fetched signing key is used without fetching it again, in seconds.
KEY_TTL = 3600.0
#: How long a failed key fetch is remembered (and its callbacks refused), in seconds.
KEY_FAILURE_TTL = 60.0
#: A cached key that does not verify a callback is fetched again only when older than this.
KEY_REFRESH_AFTER = 60.0
#: Key fetches allowed per minute, across every key URL of one system.
KEY_FETCHES_PER_MINUTE = 10
SIGNATURE_HEADER = "x-content-signature"

log = structlog.get_logger("ticketbridge.adapters.connectwise")

Origin = tuple[str, str, int | None]


def signature(signing_key: str, body: bytes) -> str:
    """``x-content-signature`` for ``body`` under ``signing_key``, as ConnectWise computes it."""
    hmac_key = hashlib.sha256(signing_key.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(hmac_key, body, hashlib.sha256).digest()).decode("ascii")


def _signature_ok(signing_key: str, body: bytes, given: str) -> bool:
    expected = signature(signing_key, body).encode("ascii")
    return hmac.compare_digest(expected, given.encode("utf-8"))


def allowed_key_origins(base_url: str, extra_hosts: Iterable[str]) -> set[Origin]:
    """(scheme, host, port) triples allowed to serve signing keys; port None = default."""
    base = httpx.URL(base_url)
    origins: set[Origin] = {(base.scheme, base.host, base.port)}
    origins.update(("https", host, None) for host in CLOUD_KEY_HOSTS)
    schemes = {"https": 443, "http": 80} if base.scheme == "http" else {"https": 443}
    for entry in extra_hosts:
        host, sep, port_text = entry.rpartition(":")
        if not sep or not port_text.isdigit():
            host, port_text = entry, ""
        for scheme, default_port in schemes.items():
            port = int(port_text) if port_text else None
            origins.add((scheme, host, None if port == default_port else port))
    return origins


@dataclass(frozen=True)
class _Cached:
    """A key URL's last fetch: the key, or why it failed; ``at`` in monotonic seconds;
    ``refresh`` when it was fetched again because a callback did not verify."""

    key: str | None
    error: str | None
    at: float
    refresh: bool = False


def precheck(headers: Mapping[str, str]) -> None:
    """Refuse, before the body is read, a callback without a signature header."""
    if not headers.get(SIGNATURE_HEADER, "").strip():
        raise WebhookAuthError(f"callback has no {SIGNATURE_HEADER} header")


class CallbackVerifier:
    """Verifies one ConnectWise system's callbacks (holds its key cache and key client)."""

    def __init__(
        self,
        base_url: str,
        allowed_key_hosts: Iterable[str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        fetches_per_minute: int = KEY_FETCHES_PER_MINUTE,
    ) -> None:
        self._base_scheme = httpx.URL(base_url).scheme
        self._origins = allowed_key_origins(base_url, allowed_key_hosts)
        self._transport = transport
        self._clock = clock
        self._budget = fetches_per_minute
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._fetched_at: deque[float] = deque()
        self._budget_warned = False
        #: Key URL -> the fetch under way; concurrent callbacks share it.
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._client: httpx.AsyncClient | None = None
        #: Key fetches sent (for tests and metrics).
        self.fetches = 0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def key_url(self, value: Any) -> httpx.URL:
        """The callback's key URL, refused unless it points at an allowed origin."""
        if not isinstance(value, str) or not value:
            raise WebhookAuthError("callback has no Metadata.key_url")
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, ValueError):
            raise WebhookAuthError("callback key_url is not a URL") from None
        allowed_schemes = {"https", "http"} if self._base_scheme == "http" else {"https"}
        if url.scheme not in allowed_schemes:
            raise WebhookAuthError(f"callback key_url scheme {url.scheme!r} is not allowed")
        if url.userinfo:
            raise WebhookAuthError("callback key_url carries credentials")
        if (url.scheme, url.host, url.port) not in self._origins:
            raise WebhookAuthError(f"callback key_url host {url.host!r} is not allowed")
        return url

    def _fresh(self, name: str, now: float) -> _Cached | None:
        cached = self._cache.get(name)
        if cached is None:
            return None
        ttl = KEY_TTL if cached.key is not None else KEY_FAILURE_TTL
        return cached if now - cached.at < ttl else None

    def _spend_fetch(self, now: float) -> None:
        """Take one fetch from the per-minute budget, or refuse with 503 (logged once)."""
        while self._fetched_at and now - self._fetched_at[0] >= 60.0:
            self._fetched_at.popleft()
        if len(self._fetched_at) >= self._budget:
            if not self._budget_warned:
                self._budget_warned = True
                log.warning(
                    "callback_key_fetch_budget_spent",
                    fetches_per_minute=self._budget,
                    hint="many callbacks name signing keys not cached: forged callbacks?",
                )
            raise WebhookUnavailableError(
                "too many callback signing-key fetches this minute; try again later"
            )
        self._budget_warned = False
        self._fetched_at.append(now)

    async def signing_key(self, url: httpx.URL, *, stale: str | None = None) -> str:
        """The signing key at ``url``: cached, else fetched within the budget.

        ``stale``: a cached key that did not verify; fetched again unless it was itself
        fetched that way less than ``KEY_REFRESH_AFTER`` ago (then the same key is returned).
        """
        name = str(url)
        now = self._clock()
        cached = self._fresh(name, now)
        if cached is not None:
            if cached.key is None:
                raise WebhookAuthError(cached.error or "callback signing key unavailable")
            if cached.key != stale or (cached.refresh and now - cached.at < KEY_REFRESH_AFTER):
                return cached.key
        fetch = self._inflight.get(name)
        if fetch is None:
            self._spend_fetch(now)
            fetch = asyncio.ensure_future(self._fetch_and_remember(url, refresh=stale is not None))
            self._inflight[name] = fetch
            fetch.add_done_callback(lambda done: self._fetched(name, done))
        return await asyncio.shield(fetch)

    def _fetched(self, name: str, done: asyncio.Future[str]) -> None:
        self._inflight.pop(name, None)
        if not done.cancelled():
            done.exception()  # retrieved here too, so a fetch nobody awaits any more is quiet

    async def _fetch_and_remember(self, url: httpx.URL, *, refresh: bool) -> str:
        self.fetches += 1
        try:
            key = await self._fetch_key(url)
        except WebhookAuthError as exc:
            self._remember(str(url), _Cached(None, str(exc), self._clock()))
            raise
        self._remember(str(url), _Cached(key, None, self._clock(), refresh))
        return key

    def _remember(self, name: str, entry: _Cached) -> None:
        self._cache.pop(name, None)
        self._cache[name] = entry
        while len(self._cache) > KEY_CACHE_SIZE:
            self._cache.popitem(last=False)

    async def _fetch_key(self, url: httpx.URL) -> str:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=KEY_FETCH_TIMEOUT,
                follow_redirects=False,
                trust_env=False,
            )
        try:
            resp = await self._client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise WebhookAuthError(
                f"cannot fetch the callback signing key ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            raise WebhookAuthError(f"callback key_url answered {resp.status_code}")
        try:
            payload = resp.json()
        except ValueError:
            raise WebhookAuthError("callback key_url did not answer JSON") from None
        key = payload.get("signing_key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not key:
            raise WebhookAuthError("callback key_url answered no signing_key")
        return key

    async def hints(
        self,
        request: WebhookRequest,
        read_entity: Callable[[Mapping[str, Any]], Ticket | None] | None = None,
    ) -> list[WebhookHint]:
        """Verify a callback and say which ticket it hints at (none for other record types).

        The signed body carries the ticket as it was saved (``Entity``): with
        ``read_entity`` it comes with the hint, so the ticket need not be read again."""
        precheck(request.headers)
        given = request.headers.get(SIGNATURE_HEADER, "").strip()
        payload = webhook_json(request.body, "callback body")
        if not isinstance(payload, dict):
            raise WebhookPayloadError("callback body is not a JSON object")
        metadata = payload.get("Metadata")
        url = self.key_url(metadata.get("key_url") if isinstance(metadata, dict) else None)

        key = await self.signing_key(url)
        if not _signature_ok(key, request.body, given):
            # The key may have been rotated in place: fetched again, at most once a while.
            fresh = await self.signing_key(url, stale=key)
            if fresh == key or not _signature_ok(fresh, request.body, given):
                raise WebhookAuthError("callback signature does not match")

        if str(payload.get("Type", "")).casefold() != "ticket":
            return []
        record = payload.get("ID")
        if record is None or record == "":
            record = request.query.get("recordId")
        ticket_id = str(record) if isinstance(record, int | str) else ""
        if isinstance(record, bool) or not ticket_id.isascii() or not ticket_id.isdigit():
            raise WebhookPayloadError("callback has no ticket ID")
        message_id = text_or_none(payload.get("MessageId"))
        delivery_key = message_id or hashlib.sha256(request.body).hexdigest()
        ticket = None
        if read_entity is not None:
            entity = _entity(payload.get("Entity"))
            if entity is not None and str(entity.get("id")) == ticket_id:
                ticket = read_entity(entity)
        return [WebhookHint(ticket_id=ticket_id, delivery_key=delivery_key, ticket=ticket)]


def _entity(value: Any) -> dict[str, Any] | None:
    """The callback's ``Entity``: the record as JSON text (or, leniently, an object);
    ``None`` when absent or not an object (the ticket is then read)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None
