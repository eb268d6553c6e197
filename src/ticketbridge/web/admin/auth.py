"""Who may use the dashboard: a bearer token or basic auth from ``admin:``, or a sign-in
cookie the sign-in page hands out for either.

Nothing here is open by default: :func:`Authenticator.from_config` refuses a
configuration without credentials, and the daemon then does not start the listener.
Comparisons are constant-time.  The sign-in cookie and the form token that guards
every POST are HMACs under a key made at start, so a restart signs everyone out and
nothing secret is stored.

Forms are safe from cross-site requests twice over: every POST carries the form token
(a page of another site cannot read it), and a browser's ``Origin`` (or ``Referer``)
must name this listener.  A request that proves itself with ``Authorization: Bearer``
is a script's, never a browser's ambient credential, so it needs neither.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from ticketbridge.config import AdminConfig

__all__ = ["SESSION_COOKIE", "Authenticator", "Principal"]

SESSION_COOKIE = "tb_admin"


@dataclass(frozen=True)
class Principal:
    """Who a request was made by, and how it proved it."""

    name: str
    #: bearer | basic | session
    method: str


@dataclass
class Authenticator:
    token: str | None
    username: str | None
    password: str | None
    session_seconds: float
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @classmethod
    def from_config(cls, admin: AdminConfig) -> Authenticator:
        if not admin.has_credentials:
            raise ValueError(
                "the admin listener needs credentials: set admin.token, or admin.username "
                "and admin.password (as {env: NAME} or {file: PATH})"
            )
        return cls(admin.token, admin.username, admin.password, float(admin.session))

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401: basic auth lets a browser ask."""
        if self.password is not None:
            return 'Basic realm="ticketbridge admin", charset="UTF-8"'
        return 'Bearer realm="ticketbridge admin"'

    # -- credentials ---------------------------------------------------------------
    def check_token(self, given: str) -> bool:
        return self.token is not None and _same(given, self.token)

    def check_password(self, username: str, password: str) -> bool:
        if self.username is None or self.password is None:
            return False
        # both compared whatever the first gives: no timing tells which one was wrong
        user_ok = _same(username, self.username)
        password_ok = _same(password, self.password)
        return user_ok and password_ok

    def principal(self, request: Request) -> Principal | None:
        """Who made ``request``, or ``None`` when it proves nothing valid."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return Principal("token", "bearer") if self.check_token(value.strip()) else None
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            user, sep, password = decoded.partition(":")
            if sep and self.check_password(user, password):
                return Principal(user, "basic")
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            name = self.session_name(cookie)
            if name is not None:
                return Principal(name, "session")
        return None

    # -- sign-in cookie ------------------------------------------------------------
    def session_cookie(self, name: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.session_seconds)
        body = f"{expires}:{base64.urlsafe_b64encode(name.encode()).decode()}"
        return f"{body}:{self._sign('session', body)}"

    def session_name(self, cookie: str, now: float | None = None) -> str | None:
        body, _, signature = cookie.rpartition(":")
        if not body or not _same(signature, self._sign("session", body)):
            return None
        expires, _, encoded = body.partition(":")
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return None
        try:
            return base64.urlsafe_b64decode(encoded.encode()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    # -- forms ---------------------------------------------------------------------
    def form_token(self) -> str:
        """The token every dashboard form carries (unknown to other sites)."""
        return self._sign("form", "csrf")

    def form_allowed(self, request: Request, principal: Principal, given: str | None) -> str | None:
        """``None`` when a POST may act, else why not."""
        if principal.method == "bearer":
            return None
        if not given or not _same(given, self.form_token()):
            return "the form token is missing or stale: reload the page and try again"
        if not same_origin(request):
            return "the request came from another site"
        return None

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.key, f"{purpose}\0{value}".encode(), hashlib.sha256)
        return mac.hexdigest()


def same_origin(request: Request) -> bool:
    """The browser says the request comes from a page of this listener (or says nothing:
    a browser always sends ``Origin`` on a cross-site POST)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
