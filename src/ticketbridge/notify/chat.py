"""Chat and webhook notifications: Slack, Microsoft Teams, and a generic signed webhook.

Each sender POSTs JSON to one incoming-webhook URL through the project's
:class:`~ticketbridge.adapters.kit.http.HttpClient` (base URL = the URL's origin,
path = the rest, query included), so errors map like every adapter's: 429 ->
:class:`RateLimitedError` (``Retry-After`` honoured, retried within the call),
5xx and timeouts -> ``TransientError(uncertain=True)`` (not retried within the
call: the message may have been posted), connection refused -> retried, other
4xx -> :class:`PermanentError`.

Payloads:

* **Slack** incoming webhook: ``{"text": "*subject*\\ntext"}``, plus ``blocks``
  when given (``text`` stays as the notification fallback).  ``&``, ``<`` and
  ``>`` in the subject and text are escaped as Slack requires, so ticket text
  cannot ping ``<!channel>`` or forge links (``escape_text: false`` turns
  this off for trusted templates).
* **Microsoft Teams**: a Workflows ("Post to a channel when a webhook request is
  received") or Power Automate HTTP trigger, which takes a message with an
  Adaptive Card attachment::

      {"type": "message",
       "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": null,
                        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                                    "type": "AdaptiveCard", "version": "1.2",
                                    "body": [{"type": "TextBlock", ...}]}}]}

  ``card: message_card`` sends the legacy Office 365 connector ``MessageCard``
  instead, for connector URLs that still work; those answer throttling with
  HTTP 200 and an error text, which is mapped to :class:`RateLimitedError`.
* **Generic webhook**: ``{"key", "event", "text", "ticket"}`` with the header
  ``Idempotency-Key: <key>`` and, when a secret is configured,
  ``X-Ticketbridge-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

Webhook URLs are credentials (Slack and Teams URLs carry their token): they
are kept as ``SecretStr``, registered for log redaction, and cut out of error
messages.  They must be ``http``/``https`` and cannot carry ``user:password@``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import PurePath
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ticketbridge import __version__
from ticketbridge.adapters.kit.http import HttpClient, RetrySettings
from ticketbridge.duration import Seconds
from ticketbridge.errors import AdapterError, PermanentError, RateLimitedError
from ticketbridge.log import get_logger, register_secret
from ticketbridge.notify.base import Notification, check_key

__all__ = [
    "SIGNATURE_HEADER",
    "SlackSender",
    "SlackSettings",
    "TeamsSender",
    "TeamsSettings",
    "WebhookSender",
    "WebhookSettings",
    "sign_body",
    "slack_escape",
    "split_webhook_url",
]

SIGNATURE_HEADER = "X-Ticketbridge-Signature"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_VERSION = "1.2"
_USER_AGENT = f"ticketbridge/{__version__}"

log = get_logger(__name__)


# -- URLs -------------------------------------------------------------------------------


def split_webhook_url(url: str) -> tuple[str, str]:
    """``(origin, path?query)`` of an http(s) webhook URL; ``ValueError`` if it is not one.

    The messages never quote the URL: it is a credential.
    """
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError("the webhook URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("the webhook URL is malformed") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the webhook URL must start with https:// (or http://)")
    if not parts.hostname:
        raise ValueError("the webhook URL has no host")
    if "@" in parts.netloc:
        raise ValueError("the webhook URL must not carry user:password@ credentials")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    rest = parts.path or "/"
    if parts.query:
        rest += f"?{parts.query}"
    return origin, rest


class _WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: The incoming-webhook URL (a secret: use ``{env: ...}`` or ``{file: ...}``).
    url: SecretStr
    #: Seconds for connect, send and read.
    timeout: Seconds = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        split_webhook_url(value.get_secret_value())
        return value


class SlackSettings(_WebhookSettings):
    """A Slack incoming webhook (``https://hooks.slack.com/services/...``)."""

    #: Escape ``&``, ``<``, ``>`` so text cannot mention ``@channel`` or forge links.
    escape_text: bool = True


class TeamsSettings(_WebhookSettings):
    """A Teams Workflows / Power Automate webhook, or a legacy connector URL."""

    #: ``adaptive``: a message with an Adaptive Card (Workflows); ``message_card``:
    #: the legacy Office 365 connector card.
    card: Literal["adaptive", "message_card"] = "adaptive"


class WebhookSettings(_WebhookSettings):
    """Any HTTP receiver of ticketbridge's own JSON."""

    #: HMAC-SHA256 key for ``X-Ticketbridge-Signature``; no header without it.
    secret: SecretStr | None = None
    #: The receiver deduplicates on ``Idempotency-Key``: retry within the call even
    #: when a failure leaves it unknown whether the POST arrived (5xx, read timeout).
    idempotent_receiver: bool = False


# -- JSON -------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | Decimal | PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _jsonable(payload: Mapping[str, Any], system: str) -> dict[str, Any]:
    """``payload`` as plain JSON types (dates as ISO 8601); ``PermanentError`` if it cannot be."""
    try:
        out: dict[str, Any] = json.loads(
            json.dumps(payload, default=_json_default, allow_nan=False)
        )
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"the notification is not valid JSON: {exc}", system=system) from None
    return out


def sign_body(secret: str | bytes, body: bytes) -> str:
    """The ``X-Ticketbridge-Signature`` value for ``body``: ``sha256=<hex>``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class _BodySigner(httpx.Auth):
    """Signs the exact bytes httpx sends (so the receiver can verify the raw body)."""

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[SIGNATURE_HEADER] = sign_body(self._secret, request.content)
        yield request


# -- senders ----------------------------------------------------------------------------


class _WebhookPoster:
    """POST JSON to one webhook URL, keeping the URL out of errors and logs."""

    channel: ClassVar[str]

    def __init__(
        self,
        settings: _WebhookSettings,
        *,
        retry: RetrySettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        url = settings.url.get_secret_value()
        origin, self._path = split_webhook_url(url)
        register_secret(url)
        path_only = self._path.split("?", 1)[0]
        first = path_only.strip("/").split("/", 1)[0]
        self._shown = f"/{first}/***" if first and first != path_only.strip("/") else "/***"
        # What error messages may quote: the path with its query (transport errors),
        # the path alone and its decoded form (HTTP status errors).  Replaced longest
        # first; never the bare "/", which would shred the text.
        variants = (self._path, path_only, unquote(path_only))
        self._hide = sorted({p for p in variants if len(p) > 1}, key=len, reverse=True)
        self._http = HttpClient(
            system=self.channel,
            base_url=origin,
            auth=auth,
            headers={"User-Agent": _USER_AGENT, "Accept": "application/json, text/plain, */*"},
            timeout=settings.timeout,
            retry=retry,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(
        self,
        payload: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        body = _jsonable(payload, self.channel)
        try:
            return await self._http.request(
                "POST", self._path, json=body, headers=headers, idempotent=idempotent
            )
        except AdapterError as exc:
            exc.args = (self._redact(str(exc)),)
            raise

    def _redact(self, text: str) -> str:
        for secret in self._hide:
            text = text.replace(secret, self._shown)
        return text


def _same(text: str) -> str:
    return text


def slack_escape(text: str) -> str:
    """Escape the three characters Slack reads as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSender(_WebhookPoster):
    """Posts to a Slack incoming webhook."""

    channel: ClassVar[str] = "slack"

    def __init__(
        self,
        settings: SlackSettings,
        *,
        retry: RetrySettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(settings, retry=retry, transport=transport)
        self.settings = settings

    def payload(
        self,
        text: str,
        *,
        subject: str = "",
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The JSON body :meth:`send` posts."""
        esc: Callable[[str], str] = slack_escape if self.settings.escape_text else _same
        parts = []
        if subject.strip():
            parts.append(f"*{esc(' '.join(subject.split()))}*")
        if text:
            parts.append(esc(text))
        if not parts and not blocks:
            raise PermanentError("nothing to post: no subject, text or blocks", system=self.channel)
        payload: dict[str, Any] = {"text": "\n".join(parts)}
        if blocks:
            payload["blocks"] = [dict(block) for block in blocks]
        return payload

    async def send(
        self,
        text: str,
        key: str,
        *,
        subject: str = "",
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """Post one message; return ``key`` (Slack answers a bare ``ok``)."""
        check_key(key)
        await self._post(self.payload(text, subject=subject, blocks=blocks))
        log.info("chat_sent", channel=self.channel, key=key)
        return key

    async def deliver(self, notification: Notification) -> str:
        """Post ``notification``; ``context["blocks"]`` adds Block Kit blocks."""
        blocks = notification.context.get("blocks")
        return await self.send(
            notification.text,
            notification.key,
            subject=notification.subject,
            blocks=blocks if isinstance(blocks, Sequence) and not isinstance(blocks, str) else None,
        )


class TeamsSender(_WebhookPoster):
    """Posts to a Microsoft Teams Workflows (Power Automate) webhook."""

    channel: ClassVar[str] = "teams"

    def __init__(
        self,
        settings: TeamsSettings,
        *,
        retry: RetrySettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(settings, retry=retry, transport=transport)
        self.settings = settings

    def payload(self, text: str, *, subject: str = "") -> dict[str, Any]:
        """The JSON body :meth:`send` posts."""
        title = " ".join(subject.split())
        if not title and not text:
            raise PermanentError("nothing to post: no subject or text", system=self.channel)
        if self.settings.card == "message_card":
            card: dict[str, Any] = {
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": title or " ".join(text.split())[:80],
            }
            if title:
                card["title"] = title
            if text:
                card["text"] = text
            return card
        body: list[dict[str, Any]] = []
        if title:
            body.append(
                {
                    "type": "TextBlock",
                    "text": title,
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                }
            )
        if text:
            body.append({"type": "TextBlock", "text": text, "wrap": True})
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": ADAPTIVE_CARD,
                    "contentUrl": None,
                    "content": {
                        "$schema": ADAPTIVE_SCHEMA,
                        "type": "AdaptiveCard",
                        "version": ADAPTIVE_VERSION,
                        "body": body,
                    },
                }
            ],
        }

    async def send(self, text: str, key: str, *, subject: str = "") -> str:
        """Post one card; return ``key`` (Workflows answer ``202`` with no body)."""
        check_key(key)
        resp = await self._post(self.payload(text, subject=subject))
        if self.settings.card == "message_card" and "HTTP error 429" in resp.text:
            # Legacy connectors report throttling in a 200 body.
            raise RateLimitedError(
                f"POST {self._shown} -> {resp.status_code}: {resp.text[:200]}",
                system=self.channel,
            )
        log.info("chat_sent", channel=self.channel, key=key)
        return key

    async def deliver(self, notification: Notification) -> str:
        """Post ``notification`` as a card titled with its subject."""
        return await self.send(notification.text, notification.key, subject=notification.subject)


class WebhookSender(_WebhookPoster):
    """Posts ticketbridge's own JSON to any HTTP receiver, optionally signed."""

    channel: ClassVar[str] = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        retry: RetrySettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        signer = None
        if settings.secret is not None:
            register_secret(settings.secret.get_secret_value())
            signer = _BodySigner(settings.secret.get_secret_value())
        super().__init__(settings, retry=retry, transport=transport, auth=signer)
        self.settings = settings

    @staticmethod
    def payload(
        text: str, key: str, *, event: str = "notification", ticket: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The JSON body :meth:`send` posts (before signing)."""
        return {"key": key, "event": event, "text": text, "ticket": dict(ticket or {})}

    async def send(
        self,
        text: str,
        key: str,
        *,
        event: str = "notification",
        ticket: Mapping[str, Any] | None = None,
    ) -> str:
        """POST one event with ``Idempotency-Key: key``; return ``key``."""
        check_key(key)
        await self._post(
            self.payload(text, key, event=event, ticket=ticket),
            headers={"Idempotency-Key": key},
            idempotent=self.settings.idempotent_receiver,
        )
        log.info("webhook_sent", channel=self.channel, key=key, notify_event=event)
        return key

    async def deliver(self, notification: Notification) -> str:
        """POST ``notification``; ``context["event"]`` and ``context["ticket"]`` fill the body."""
        ticket = notification.context.get("ticket")
        return await self.send(
            notification.text,
            notification.key,
            event=str(notification.context.get("event", "notification")),
            ticket=ticket if isinstance(ticket, Mapping) else None,
        )
