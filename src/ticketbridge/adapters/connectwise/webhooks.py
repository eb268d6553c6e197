"""ConnectWise PSA callbacks: verify the signature, say which ticket changed.

A callback's JSON body names a signing key URL (``Metadata.key_url``); the
``x-content-signature`` header carries ``base64(HMAC-SHA256(sha256(key), body))``.
Key URLs are fetched only from the configured API's own host and port, the
ConnectWise cloud API hosts and the system's ``allowed_key_hosts``, never
following redirects; keys are cached per URL and fetched once more when a
cached key no longer matches (a rotated key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

import httpx

from ticketbridge.adapters.kit.payload import text_or_none
from ticketbridge.domain import WebhookHint, WebhookRequest
from ticketbridge.errors import WebhookAuthError, WebhookPayloadError

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
#: Signing keys remembered (one per key URL).
KEY_CACHE_SIZE = 32

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


class CallbackVerifier:
    """Verifies one ConnectWise system's callbacks (holds its key cache and key client)."""

    def __init__(
        self,
        base_url: str,
        allowed_key_hosts: Iterable[str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_scheme = httpx.URL(base_url).scheme
        self._origins = allowed_key_origins(base_url, allowed_key_hosts)
        self._transport = transport
        self._keys: dict[str, str] = {}
        self._client: httpx.AsyncClient | None = None

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
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.pop(next(iter(self._keys)))
        self._keys[str(url)] = key
        return key

    async def hints(self, request: WebhookRequest) -> list[WebhookHint]:
        """Verify a callback and say which ticket it hints at (none for other record types)."""
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookPayloadError("callback body is not JSON") from None
        if not isinstance(payload, dict):
            raise WebhookPayloadError("callback body is not a JSON object")
        given = request.headers.get("x-content-signature", "").strip()
        if not given:
            raise WebhookAuthError("callback has no x-content-signature header")
        metadata = payload.get("Metadata")
        url = self.key_url(metadata.get("key_url") if isinstance(metadata, dict) else None)

        # A cached key that no longer matches may have been rotated: fetch it once more.
        cached = self._keys.get(str(url))
        if cached is None or not _signature_ok(cached, request.body, given):
            fresh = await self._fetch_key(url)
            if not _signature_ok(fresh, request.body, given):
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
        return [WebhookHint(ticket_id=ticket_id, delivery_key=delivery_key)]
