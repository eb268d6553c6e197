"""A small SMTP server on loopback (aiosmtpd) delivering into local Maildirs.

For tests and the demo: STARTTLS or implicit TLS with a given certificate, optional
AUTH (PLAIN/LOGIN against one user), delivery of each accepted message into the Maildir
of each recipient that has one, and a record of every message received (what a vendor
would have got).  ``fail_after_data`` arms a fault: the next message is delivered and
then the connection is dropped before the ``250`` answer -- a lost answer.
"""

from __future__ import annotations

import asyncio
import mailbox
import ssl
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["MailServer", "Received"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    at: datetime
    #: ``None``, or the fault that hit this message (``apply_then_fail``).
    fault: str | None = None


@dataclass
class _Handler:
    maildirs: Mapping[str, Path]
    clock: Callable[[], datetime]
    received: list[Received] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        when = self.clock()
        for rcpt in envelope.rcpt_tos:
            target = self.maildirs.get(rcpt.lower())
            if target is not None:
                message = mailbox.MaildirMessage(raw)
                message.set_date(when.timestamp())
                mailbox.Maildir(target, create=True).add(message)
        with self.lock:
            fault = self.faults.pop(0) if self.faults else None
            self.received.append(
                Received(
                    envelope.mail_from or "",
                    tuple(r.lower() for r in envelope.rcpt_tos),
                    raw,
                    when,
                    fault,
                )
            )
        transport = server.transport
        if fault == "apply_then_fail" and isinstance(transport, asyncio.Transport):
            transport.abort()  # delivered, but the client never hears "250"
        return "250 OK delivered"


class _Controller(Controller):
    def factory(self) -> SMTP:
        # AUTH required over implicit TLS looks like "AUTH without TLS" to aiosmtpd's check.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            server: SMTP = super().factory()  # type: ignore[no-untyped-call]
            return server


class MailServer:
    """``MailServer(maildirs={"me@msp.example": path}).start()`` -> serving on ``port``."""

    def __init__(
        self,
        *,
        maildirs: Mapping[str, Path] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler = _Handler(
            {k.lower(): Path(v) for k, v in (maildirs or {}).items()},
            clock or (lambda: datetime.now(UTC)),
        )
        self._credentials = credentials
        kwargs: dict[str, Any] = {
            "hostname": host,
            "port": port or _free_port(host),
            "ready_timeout": 10.0,
            # Implicit TLS is TLS from the first byte, which aiosmtpd's "AUTH only after
            # STARTTLS" check does not see; in clear text AUTH is offered and checked but not
            # required (aiosmtpd refuses to require it there).
            "auth_require_tls": tls is not None and not implicit_tls,
            "auth_required": credentials is not None and tls is not None,
        }
        if credentials is not None:
            kwargs["authenticator"] = self._authenticate
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        self.host = host
        self.port: int = kwargs["port"]
        self._controller = _Controller(self.handler, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self._credentials is not None:
            user, password = self._credentials
            if data.login.decode() == user and data.password.decode() == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.faults.clear()

    def fail_after_data(self, times: int = 1) -> None:
        with self.handler.lock:
            self.handler.faults.extend(["apply_then_fail"] * times)

    def start(self) -> MailServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
