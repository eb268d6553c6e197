"""ServiceNow outbound REST messages: check the shared-secret header, say which incident changed.

The instance's business rule posts ``{"sys_id": ..., "sys_mod_count": ...}`` with a
secret header (``X-Ticketbridge-Token`` unless configured otherwise); README.md
in this folder shows the set-up.  The delivery key is the record's version, so
copies of one change collapse into one hint.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from ticketbridge.adapters.kit.payload import text_or_none, webhook_json
from ticketbridge.domain import WebhookHint, WebhookRequest
from ticketbridge.errors import WebhookAuthError, WebhookPayloadError

__all__ = ["check_token", "token_hints"]

_SYS_ID = re.compile(r"[0-9a-f]{32}")


def check_token(headers: Mapping[str, str], header: str, token: str | None) -> None:
    """Refuse unless the (lower-cased) ``headers`` carry ``token`` in ``header``.

    Needs no body, so the web app runs it before reading one.
    """
    if token is None:
        raise WebhookAuthError("no webhook_token is configured for this system")
    given = headers.get(header.lower())
    if not given:
        raise WebhookAuthError(f"missing {header} header")
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise WebhookAuthError(f"wrong {header} header")


def token_hints(request: WebhookRequest, header: str, token: str | None) -> list[WebhookHint]:
    """Verify ``header`` against ``token`` and read the incident the message names."""
    check_token(request.headers, header, token)
    payload = webhook_json(request.body)
    if not isinstance(payload, dict):
        raise WebhookPayloadError("webhook body is not a JSON object")
    sys_id = payload.get("sys_id")
    if not isinstance(sys_id, str) or not _SYS_ID.fullmatch(sys_id):
        raise WebhookPayloadError("webhook body has no sys_id of 32 hex characters")
    version = text_or_none(payload.get("sys_mod_count")) or text_or_none(
        payload.get("sys_updated_on")
    )
    delivery_key = f"{sys_id}:{version}" if version else hashlib.sha256(request.body).hexdigest()
    return [WebhookHint(ticket_id=sys_id, delivery_key=delivery_key)]
