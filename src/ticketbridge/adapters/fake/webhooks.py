"""The fake product's webhook: a JSON body signed with HMAC-SHA256 over a shared secret.

Header ``X-Fake-Signature: sha256=<hex>``; body ``{"ticket_id": ..., "delivery": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ticketbridge.adapters.kit.payload import webhook_json
from ticketbridge.domain import WebhookHint, WebhookRequest
from ticketbridge.errors import WebhookAuthError, WebhookPayloadError

__all__ = ["SIGNATURE_HEADER", "hints", "precheck", "sign"]

SIGNATURE_HEADER = "X-Fake-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def precheck(headers: Mapping[str, str], secret: str | None) -> None:
    """Refuse, before the body is read, a request that cannot verify: no secret, no signature."""
    if secret is None:
        raise WebhookAuthError("no webhook_secret is configured for this system")
    if not {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER.lower()):
        raise WebhookAuthError(f"{SIGNATURE_HEADER} is missing")


def hints(request: WebhookRequest, secret: str | None) -> list[WebhookHint]:
    """Verify the signature, then name the ticket; refuse everything without a secret."""
    if secret is None:
        raise WebhookAuthError("no webhook_secret is configured for this system")
    given = {k.lower(): v for k, v in request.headers.items()}.get(SIGNATURE_HEADER.lower(), "")
    if not hmac.compare_digest(given.encode(), sign(secret, request.body).encode()):
        raise WebhookAuthError(f"{SIGNATURE_HEADER} is missing or does not match")
    payload = webhook_json(request.body, "body")
    try:
        ticket_id, delivery = str(payload["ticket_id"]), str(payload["delivery"])
    except (TypeError, KeyError):
        raise WebhookPayloadError("body is not {ticket_id, delivery} JSON") from None
    return [WebhookHint(ticket_id=ticket_id, delivery_key=delivery)]
