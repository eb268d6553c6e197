"""E-mail notifications over SMTP (standard library ``smtplib``, run in a worker thread).

Every message carries:

* ``Message-ID: <{key}@ticketbridge.{from domain}>`` -- derived from the
  idempotency key, so a message sent again after an uncertain failure has the
  same id as the first one and mail clients and archives can tell them apart
  from new messages.  A key that is not a valid ``id-left`` is replaced by its
  SHA-256 digest;
* ``Auto-Submitted: auto-generated`` (RFC 3834), so vacation responders and
  other automatons do not answer, and ``X-Auto-Response-Suppress: OOF,
  AutoReply`` for Exchange, which does not read the former;
* ``X-Ticketbridge-Key: {key}``.

Failures map to the error tree:

* cannot connect (refused, DNS, timeout before any reply), ``4xx`` replies
  -> :class:`TransientError`; ``uncertain`` is true only when the connection
  broke or timed out after the ``DATA`` command was sent (the server may have
  taken the message without us hearing its ``250``);
* ``5xx`` replies -> :class:`PermanentError`; refused credentials
  (``535``, ``534``) -> :class:`AuthFailedError`; a server without STARTTLS or
  AUTH when the settings ask for them, or a certificate that does not verify
  -> :class:`PermanentError`.

When the server accepts some recipients and refuses others the message is
delivered to the accepted ones: :meth:`EmailSender.send` returns normally and
logs ``email_recipients_refused`` with the refused addresses (sending again
would duplicate the message for everyone else).

The transport, its errors and the partial refusals are the adapter kit's
(:mod:`ticketbridge.adapters.kit.smtp`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar

from ticketbridge.adapters.kit.smtp import (
    SmtpSender,
    SmtpSettings,
    one_line,
    parse_recipients,
    reply_text,
    split_addresses,
)
from ticketbridge.log import get_logger
from ticketbridge.notify.base import Notification, check_key

__all__ = ["EmailSender", "SmtpSettings", "message_id_for", "split_addresses"]

_ID_LEFT_RE = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*")
_MAX_ID_LEFT = 64

log = get_logger(__name__)


def message_id_for(key: str, domain: str) -> str:
    """The ``Message-ID`` of the message sent with idempotency key ``key``."""
    left = key if len(key) <= _MAX_ID_LEFT and _ID_LEFT_RE.fullmatch(key) else None
    if left is None:
        left = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    try:
        right = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        right = "invalid"
    return f"<{left}@ticketbridge.{right}>"


class EmailSender(SmtpSender):
    """Sends plain-text notifications through one SMTP relay."""

    channel: ClassVar[str] = "email"

    async def send(self, to: list[str], subject: str, body: str, key: str) -> str:
        """Send one message to ``to``; return its ``Message-ID``."""
        msg = self.build_message(to, subject, body, key)
        recipients = [a.addr_spec for a in parse_recipients(to)]
        refused = await self.transmit(msg, recipients)
        message_id = str(msg["Message-ID"])
        if refused:
            log.warning(
                "email_recipients_refused",
                message_id=message_id,
                key=key,
                refused={
                    addr: f"{code} {reply_text(reply)}" for addr, (code, reply) in refused.items()
                },
                delivered=len(recipients) - len(refused),
            )
        log.info(
            "email_sent",
            message_id=message_id,
            key=key,
            recipients=len(recipients) - len(refused),
        )
        return message_id

    async def deliver(self, notification: Notification) -> str:
        """Send ``notification`` to the comma-separated addresses of its target."""
        return await self.send(
            split_addresses(notification.target),
            notification.subject,
            notification.text,
            notification.key,
        )

    def build_message(self, to: Sequence[str], subject: str, body: str, key: str) -> EmailMessage:
        """The message :meth:`send` would send; ``PermanentError`` if it cannot be built."""
        check_key(key)
        recipients = parse_recipients(to)
        msg = EmailMessage()
        msg["Message-ID"] = message_id_for(key, self._sender.domain)
        msg["Date"] = formatdate(usegmt=True)
        msg["From"] = self._sender
        msg["To"] = tuple(recipients)
        msg["Subject"] = one_line(subject)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
        msg["X-Ticketbridge-Key"] = key
        if body.isascii():
            msg.set_content(body)
        else:
            msg.set_content(body, cte="quoted-printable")
        return msg
