"""Loopback receivers for the notification senders: a real SMTP server and an HTTP receiver.

* ``smtp_server``: aiosmtpd's ``Controller`` on 127.0.0.1 and a free port, with a
  handler that records what it accepted and can be told to refuse (``451``/``550``
  at RCPT, MAIL or DATA) or to stall before answering DATA.  AUTH PLAIN/LOGIN is
  offered without TLS (loopback only) for ``USER``/``PASSWORD``.
* ``receiver``: a ``ThreadingHTTPServer`` on 127.0.0.1 that records every request
  (raw path with query, headers, raw body) and answers from a script.
* ``silent_port``: a listening socket that never says anything (SMTP greeting timeout).
* ``closed_port``: a port nobody listens on (connection refused).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = "tb-mailer"
PASSWORD = "s3cret-Pa55word-xyz"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- SMTP --------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SmtpHandler:
    """An aiosmtpd handler that records accepted messages and refuses on request."""

    messages: list[Received] = field(default_factory=list)
    #: RCPT address -> reply, e.g. ``"550 5.1.1 no such user"``.
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    data_reply: str | None = None
    #: Seconds to wait before answering the end of DATA.
    data_delay: float = 0.0
    data_commands: int = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=envelope.original_content or envelope.content,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 Message accepted for delivery"


def _authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: SmtpHandler

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """SmtpSettings fields for this server: plain SMTP, no TLS, short timeout."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "starttls": False,
            "ssl": False,
            "from_address": "Service Desk <alerts@msp.example>",
            "timeout": 5.0,
            "local_hostname": "tb.test",
        }
        values.update(overrides)
        return values


def _start_controller(handler: SmtpHandler, **kwargs: Any) -> Controller:
    last: OSError | None = None
    for _ in range(5):
        controller = Controller(
            handler, hostname="127.0.0.1", port=free_port(), ready_timeout=5.0, **kwargs
        )
        try:
            controller.start()
        except OSError as exc:  # the free port was taken in between: try another
            last = exc
            continue
        return controller
    raise RuntimeError(f"cannot start the SMTP server: {last}")


@pytest.fixture
def smtp_handler() -> SmtpHandler:
    return SmtpHandler()


@pytest.fixture
def smtp_server(smtp_handler: SmtpHandler) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1, offering AUTH without TLS (never required)."""
    controller = _start_controller(
        smtp_handler, authenticator=_authenticate, auth_require_tls=False
    )
    try:
        yield SmtpServer(host="127.0.0.1", port=controller.port, handler=smtp_handler)
    finally:
        controller.stop()


@pytest.fixture
def plain_smtp_server(smtp_handler: SmtpHandler) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 offering neither STARTTLS nor AUTH."""
    controller = _start_controller(smtp_handler)
    try:
        yield SmtpServer(host="127.0.0.1", port=controller.port, handler=smtp_handler)
    finally:
        controller.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never sends a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A port with no listener: connecting is refused at once."""
    return free_port()


# -- HTTP --------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str  # raw request target: path and query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """What the HTTP receiver saw, and the replies it will give (default ``200 ok``)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.replies: deque[Reply] = deque()
        self.port = 0

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append(
                Request(
                    method="POST",
                    target=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            reply = receiver.replies.popleft() if receiver.replies else Reply()
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) leaves a broken pipe behind: not news.
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver on 127.0.0.1 in a background thread."""
    state = Receiver()
    server = _QuietServer(("127.0.0.1", 0), _handler_for(state))
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
