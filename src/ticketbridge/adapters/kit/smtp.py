"""SMTP for every product that mails: one relay, plain text, the errors tree (the standard
library ``smtplib``, run in a worker thread).

Failures map to the error tree:

* cannot connect (refused, DNS, timeout before any reply), ``4xx`` replies
  -> :class:`TransientError`; ``uncertain`` is true only when the connection
  broke or timed out after the ``DATA`` command was sent (the server may have
  taken the message without us hearing its ``250``);
* ``5xx`` replies -> :class:`PermanentError`; refused credentials
  (``535``, ``534``) -> :class:`AuthFailedError`; a server without STARTTLS or
  AUTH when the settings ask for them, or a certificate that does not verify
  -> :class:`PermanentError`.

When the server accepts some recipients and refuses others the message is delivered to
the accepted ones: :meth:`SmtpSender.transmit` returns the refused ones (sending again
would duplicate the message for everyone else).

The transfer runs in a worker thread; cancelling a send does not stop a transfer already
under way (``timeout`` bounds each step).  The password is never logged and never part of
an error message.  Used by the notifications (``ticketbridge.notify.email``) and the
e-mail vendor product (``adapters/email``).
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ticketbridge.duration import Seconds
from ticketbridge.errors import (
    AdapterError,
    AuthFailedError,
    PermanentError,
    TransientError,
)
from ticketbridge.log import get_logger, register_secret

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "Refused",
    "SmtpSender",
    "SmtpSettings",
    "one_line",
    "parse_recipients",
    "reply_text",
    "split_addresses",
]

SYSTEM = "smtp"
_ID_LEFT_RE = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*")
_MAX_ID_LEFT = 64
_REPLY_TEXT_MAX = 200

log = get_logger(__name__)


def _parse_mailbox(value: str) -> Address:
    """One ``addr@domain`` or ``Display Name <addr@domain>``; ``ValueError`` otherwise."""
    if "\r" in value or "\n" in value:
        raise ValueError("an address cannot contain a line break")
    pairs = getaddresses([value])
    if len(pairs) != 1:
        raise ValueError("expected exactly one address")
    name, addr = pairs[0]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr:
        raise ValueError("not an e-mail address")
    try:
        return Address(display_name=name, addr_spec=addr)
    except (HeaderParseError, IndexError, ValueError):
        raise ValueError("not an e-mail address") from None


class SmtpSettings(BaseModel):
    """How to reach the mail relay, and who the messages are from."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    host: str = Field(min_length=1)
    #: 587 for submission with STARTTLS, 465 for implicit TLS (``ssl``), 25 for a local relay.
    port: int = Field(default=587, ge=1, le=65535)
    #: Upgrade the connection with STARTTLS (the server must offer it).
    starttls: bool = True
    #: Implicit TLS from the first byte (port 465); excludes ``starttls``.
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    #: ``alerts@msp.example`` or ``Service Desk <alerts@msp.example>``.
    from_address: str
    #: Seconds each network step (connect, every command) may take.
    timeout: Seconds = Field(default=30.0, gt=0)
    #: Name sent in EHLO; default: this host's fully qualified name.
    local_hostname: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(c.isspace() for c in value) or "/" in value:
            raise ValueError("host must be a host name or an IP address, not a URL")
        return value

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        _parse_mailbox(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if self.starttls and self.ssl:
            raise ValueError("set either starttls (port 587) or ssl (port 465), not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def sender(self) -> Address:
        return _parse_mailbox(self.from_address)


def split_addresses(value: str) -> list[str]:
    """``'a@x.example, "Lee, Dana" <d@x.example>'`` as one string per mailbox.

    Quoted display names may contain commas.  A value nothing can be parsed from
    is returned whole, so that sending refuses it rather than finding no recipient.
    """
    out: list[str] = []
    for name, addr in getaddresses([value]):
        if not name and not addr:
            continue
        if name:
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{quoted}" <{addr}>')
        else:
            out.append(addr)
    if not out and value.strip():
        out.append(value.strip())
    return out


def one_line(text: str) -> str:
    return " ".join(text.split())


class _TrackedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that remembers whether the DATA command was sent."""

    data_started = False

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


class _TrackedSMTPSSL(smtplib.SMTP_SSL):
    """``smtplib.SMTP_SSL`` that remembers whether the DATA command was sent."""

    data_started = False

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


Refused = dict[str, tuple[int, bytes]]


class SmtpSender:
    """Sends messages through one SMTP relay."""

    def __init__(self, settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self._sender = settings.sender
        self._ssl_context = ssl_context
        self._where = f"SMTP {settings.host}:{settings.port}"
        if settings.password is not None:
            register_secret(settings.password.get_secret_value())

    # -- public API ------------------------------------------------------------
    async def transmit(self, msg: EmailMessage, recipients: Sequence[str]) -> Refused:
        """Send a message built elsewhere to the envelope ``recipients`` (errors as ``send``);
        return the refused recipients (the others got it)."""
        return await asyncio.to_thread(self._transmit, msg, list(recipients))

    async def login(self) -> None:
        """Connect, secure and authenticate as a send would, then hang up without sending."""
        await asyncio.to_thread(self._login)

    def _login(self) -> None:
        s = self.settings
        try:
            client = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, data_started=False) from None
        try:
            if s.starttls:
                client.starttls(context=self._tls_context())
                client.ehlo()
            else:
                client.ehlo()
            if s.username is not None and s.password is not None:
                client.login(s.username, s.password.get_secret_value())
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, data_started=False) from None
        finally:
            _hang_up(client, polite=True)

    async def aclose(self) -> None:
        """Nothing to release: every send opens and closes its own connection."""

    # -- the blocking part, run in a worker thread -----------------------------
    def _connect(self) -> _TrackedSMTP | _TrackedSMTPSSL:
        s = self.settings
        if s.ssl:
            return _TrackedSMTPSSL(
                s.host,
                s.port,
                local_hostname=s.local_hostname,
                timeout=s.timeout,
                context=self._tls_context(),
            )
        return _TrackedSMTP(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout)

    def _tls_context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _transmit(self, msg: EmailMessage, recipients: list[str]) -> Refused:
        s = self.settings
        try:
            client = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, data_started=False) from None
        delivered = False
        try:
            if s.starttls:
                client.starttls(context=self._tls_context())
                client.ehlo()
            if s.username is not None and s.password is not None:
                client.login(s.username, s.password.get_secret_value())
            refused: Refused = client.send_message(
                msg, from_addr=self._sender.addr_spec, to_addrs=recipients
            )
            delivered = True
            return refused
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, data_started=client.data_started) from None
        finally:
            _hang_up(client, polite=delivered)

    # -- error mapping -----------------------------------------------------------
    def _error(self, exc: BaseException, *, data_started: bool) -> AdapterError:
        where = self._where
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            code, text = exc.smtp_code, self._reply(exc.smtp_error)
            if 400 <= code < 500:
                return TransientError(
                    f"{where}: authentication failed for now: {code} {text}",
                    system=SYSTEM,
                    status=code,
                )
            return AuthFailedError(
                f"{where}: authentication refused: {code} {text}", system=SYSTEM, status=code
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = exc.recipients
            detail = "; ".join(
                f"{addr}: {code} {self._reply(reply)}" for addr, (code, reply) in refused.items()
            )
            codes = [code for code, _ in refused.values()]
            if codes and all(500 <= code < 600 for code in codes):
                return PermanentError(
                    f"{where}: every recipient refused: {detail}",
                    system=SYSTEM,
                    status=max(codes),
                )
            return TransientError(
                f"{where}: every recipient refused: {detail}",
                system=SYSTEM,
                status=min(codes) if codes else None,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentError(f"{where}: {self._reply(str(exc))}", system=SYSTEM)
        if isinstance(exc, smtplib.SMTPResponseException):
            code, text = exc.smtp_code, self._reply(exc.smtp_error)
            what = _phase_of(exc)
            if 400 <= code < 500:
                return TransientError(f"{where}: {what}: {code} {text}", system=SYSTEM, status=code)
            if 500 <= code < 600:
                return PermanentError(f"{where}: {what}: {code} {text}", system=SYSTEM, status=code)
            return TransientError(
                f"{where}: {what}: unexpected reply {code} {text}",
                system=SYSTEM,
                uncertain=data_started,
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            # smtplib reports a read timeout as a disconnection; the cause tells them apart.
            timed_out = isinstance(exc.__context__, TimeoutError)
            return TransientError(
                f"{where}: "
                + ("timed out" if timed_out else "the server closed the connection")
                + (" after DATA; the message may have been accepted" if data_started else ""),
                system=SYSTEM,
                uncertain=data_started,
            )
        if isinstance(exc, smtplib.SMTPException):
            # "No suitable authentication method found." and the like: configuration.
            return PermanentError(f"{where}: {self._reply(str(exc))}", system=SYSTEM)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError(
                f"{where}: the server's certificate does not verify ({exc.verify_message})",
                system=SYSTEM,
            )
        if isinstance(exc, ConnectionRefusedError | socket.gaierror):
            return TransientError(
                f"{where}: cannot connect ({type(exc).__name__})", system=SYSTEM, uncertain=False
            )
        if isinstance(exc, TimeoutError):
            return TransientError(
                f"{where}: timed out"
                + (" after DATA; the message may have been accepted" if data_started else ""),
                system=SYSTEM,
                uncertain=data_started,
            )
        return TransientError(
            f"{where}: connection failed ({type(exc).__name__})",
            system=SYSTEM,
            uncertain=data_started,
        )

    def _reply(self, reply: bytes | str) -> str:
        text = reply_text(reply)
        password = self.settings.password
        if password is not None and password.get_secret_value():
            text = text.replace(password.get_secret_value(), "***")
        return text


def parse_recipients(to: Sequence[str]) -> list[Address]:
    if isinstance(to, str):
        raise PermanentError("recipients must be a list of addresses, not a string", system=SYSTEM)
    if not to:
        raise PermanentError("no recipients", system=SYSTEM)
    out: list[Address] = []
    for value in to:
        try:
            out.append(_parse_mailbox(value))
        except ValueError as exc:
            raise PermanentError(f"recipient {value!r}: {exc}", system=SYSTEM) from None
    return out


def reply_text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return " ".join(reply.split())[:_REPLY_TEXT_MAX]


def _phase_of(exc: smtplib.SMTPResponseException) -> str:
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "sender refused"
    if isinstance(exc, smtplib.SMTPDataError):
        return "message refused"
    if isinstance(exc, smtplib.SMTPConnectError):
        return "greeting refused"
    if isinstance(exc, smtplib.SMTPHeloError):
        return "EHLO refused"
    return "command refused"


def _hang_up(client: smtplib.SMTP, *, polite: bool) -> None:
    """QUIT after a delivery (its failure does not matter), else just close."""
    if polite:
        try:
            client.quit()
            return
        except (smtplib.SMTPException, OSError):
            pass
    client.close()
