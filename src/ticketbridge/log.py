"""Logging: structlog for our code, the same pipeline for the standard library's loggers.

Call :func:`configure_logging` once, early (the CLI does it before loading the
configuration).  After that every line on stdout, whether it comes from a
structlog logger (:func:`get_logger`) or from a stdlib logger (uvicorn,
apscheduler, httpx, SQLAlchemy), is one event rendered the same way: one JSON
object per line when stdout is not a terminal, the console renderer otherwise.

The processor chain, for both kinds of records::

    merge_contextvars -> logger name -> level -> %-args -> ISO UTC timestamp
    -> stack info -> exception to text -> redact -> render

Redaction (:func:`redact`) runs last before rendering, on every string of the
event, tracebacks included:

* values under secret-looking keys (``password``, ``token``, ``api_key``,
  ``authorization``, ``cookie``, ...; any nesting depth) become ``***``;
* every value passed to :func:`register_secret` becomes ``***`` wherever it
  appears inside a string;
* ``Bearer <token>``, ``Basic <base64>``, ``Authorization:``/``Cookie:``
  header values, secret-looking ``key=value`` pairs and URL query parameters,
  and URL userinfo (``https://user:pass@host``) are masked.

Exceptions are rendered to text *before* redaction, so the console renderer
shows plain tracebacks (no locals, no Rich formatting): a pretty traceback
would be drawn by the renderer after redaction, out of its reach.

Until :func:`configure_logging` runs, structlog's defaults apply and nothing
is redacted.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, TextIO
from urllib.parse import quote, quote_plus

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "TICKET_KEYS",
    "bind_contextvars",
    "configure_logging",
    "get_logger",
    "redact",
    "register_secret",
    "ticket_context",
    "ticket_fields",
]

REDACTED = "***"
"""What a secret is replaced with."""

_HANDLER_NAME = "ticketbridge"
_MIN_SECRET_LENGTH = 4
_MAX_DEPTH = 20

# Stdlib loggers whose records must reach our root handler instead of their own.
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "httpx", "httpcore")
# Chatty at INFO (one line per request or job run); kept at WARNING or above.
_QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "alembic")

# --------------------------------------------------------------------------- patterns

# Structured keys whose values are secrets (searched, case-insensitive: ``db_password``,
# ``X-Api-Key``, ``client_secret`` and ``refresh_token`` all match).
_SECRET_KEY_RE = re.compile(
    r"password|passwd|secret|token|access_token|refresh_token|api[_-]?key|apikey"
    r"|authorization|cookie|private[_-]?key|signing[_-]?key",
    re.IGNORECASE,
)

# URL query parameters masked besides the secret keys: names that mean "credential"
# inside a URL (key=, sig=, X-Amz-Signature=, X-Amz-Credential=, pass=), matched whole.
_CREDENTIAL_PARAM_RE = re.compile(
    r"(?:[\w.-]*[_.-])?(?:key|sig|signature|auth|credentials?|pass|pwd)", re.IGNORECASE
)

# scheme://userinfo@host -> scheme://***@host (greedy up to the last "@" of the authority).
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s\"'<>]*@")

# "Bearer <token>" (RFC 6750 b64token) and "Basic <base64>".
_AUTH_SCHEME_RE = re.compile(
    r"(?i)\b(bearer)(\s+)([A-Za-z0-9\-._~+/]+=*)|\b(basic)(\s+)([A-Za-z0-9+/]+={0,2})"
)
# Prose, not credentials: "Basic authentication", "basic plan", "missing bearer token".
# A Basic credential is base64 of "user:password", never a plain word; a bearer token
# may be anything, so only a few words that follow "bearer" in prose are spared.
_PLAIN_WORD_RE = re.compile(r"[A-Za-z][a-z]*")
_BEARER_PROSE = frozenset(
    {"auth", "authentication", "authorization", "credentials", "header", "realm", "token", "tokens"}
)

# "Header: value" whose value is a credential, whatever the scheme: "[scheme] credential"
# for Authorization and API-key headers, the rest of the line for cookies ("a=1; b=2").
_AUTH_HEADER_RE = re.compile(
    r"(?i)(?<![\w-])((?:proxy-)?authorization|x-api-key|api-key)"
    r"([\"']?\s*:\s*[\"']?)((?:[A-Za-z][\w-]*\s+)?[^\s\"',;]+)"
)
_COOKIE_HEADER_RE = re.compile(r"(?i)(?<![\w-])((?:set-)?cookie)([\"']?\s*:\s*[\"']?)([^\"'\r\n]+)")

# ?name=value / &name=value in URLs.
_QUERY_RE = re.compile(r"([?&;])([^=&#\s\"'<>]+)=([^&#\s\"'<>]*)")

# Free-text key=value / key: value / 'key': 'value' with a secret-looking key.
_KV_RE = re.compile(
    r"(?i)(?<![\w-])([\w.-]*(?:" + _SECRET_KEY_RE.pattern + r")[\w.-]*)"
    r"([\"']?\s*[:=]\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s\"',;&}\])]+)"
)

# --------------------------------------------------------------------------- registry

_registry_lock = threading.Lock()
_registered: set[str] = set()
_registered_re: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in a log line from now on.

    Call it for every secret the daemon loads (API keys, webhook secrets,
    database passwords).  Values shorter than 4 characters are ignored: masking
    them would shred ordinary text.  The URL-encoded and escaped spellings of
    the value are masked too.
    """
    if not isinstance(value, str):
        raise TypeError(f"register_secret() takes a str, not {type(value).__name__}")
    if len(value) < _MIN_SECRET_LENGTH:
        return
    variants = {
        value,
        quote(value, safe=""),
        quote_plus(value),
        jsonlib.dumps(value)[1:-1],
        repr(value)[1:-1],
    }
    global _registered_re
    with _registry_lock:
        if variants <= _registered:
            return
        _registered.update(variants)
        ordered = sorted(_registered, key=len, reverse=True)  # longest first
        _registered_re = re.compile("|".join(re.escape(v) for v in ordered))


# --------------------------------------------------------------------------- redaction


def _mask_auth_scheme(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        scheme, space, credential = match.group(1, 2, 3)
        spared = credential.lower() in _BEARER_PROSE
    else:
        scheme, space, credential = match.group(4, 5, 6)
        spared = _PLAIN_WORD_RE.fullmatch(credential) is not None
    if spared:
        return match.group(0)
    return f"{scheme}{space}{REDACTED}"


def _mask_query(match: re.Match[str]) -> str:
    sep, name, value = match.group(1, 2, 3)
    if value and (_SECRET_KEY_RE.search(name) or _CREDENTIAL_PARAM_RE.fullmatch(name)):
        return f"{sep}{name}={REDACTED}"
    return match.group(0)


def _mask_kv(match: re.Match[str]) -> str:
    key, sep, value = match.group(1, 2, 3)
    quote_char = value[0] if value[0] in "\"'" else ""
    return f"{key}{sep}{quote_char}{REDACTED}{quote_char}"


def _scrub(text: str) -> str:
    """``text`` with registered secrets and credential patterns masked."""
    pattern = _registered_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _USERINFO_RE.sub(rf"\1{REDACTED}@", text)
    text = _AUTH_SCHEME_RE.sub(_mask_auth_scheme, text)
    text = _AUTH_HEADER_RE.sub(rf"\1\2{REDACTED}", text)
    text = _COOKIE_HEADER_RE.sub(rf"\1\2{REDACTED}", text)
    text = _QUERY_RE.sub(_mask_query, text)
    return _KV_RE.sub(_mask_kv, text)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"


def _mask_value(value: object) -> object:
    # None, booleans and "" say "missing"/"present" without revealing anything.
    if value is None or isinstance(value, bool) or value == "":
        return value
    return REDACTED


def _redact_key(key: object) -> object:
    if isinstance(key, str):
        return _scrub(key)
    if isinstance(key, int | float | bool) or key is None:
        return key
    return _scrub(_safe_repr(key))


def _redact_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str) and _SECRET_KEY_RE.search(key):
            out[_redact_key(key)] = _mask_value(value)
        else:
            out[_redact_key(key)] = _redact_value(value, depth + 1)
    return out


def _redact_value(value: object, depth: int = 0) -> object:
    if isinstance(value, str):
        return _scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return _redact_mapping(value, depth)
        if isinstance(value, list):
            return [_redact_value(item, depth + 1) for item in value]
        if isinstance(value, tuple):
            return tuple(_redact_value(item, depth + 1) for item in value)
    # Anything else would be rendered through repr(): scrub that text now.
    return _scrub(_safe_repr(value))


def redact(_logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor masking secrets in every key and value of the event.

    It never raises: a failing processor would make ``logging`` print the raw,
    unredacted event to stderr.
    """
    try:
        return _redact_mapping(event_dict, 0)
    except Exception as exc:  # noqa: BLE001 - never let an unredacted event escape
        return {
            "event": "log event dropped: redaction failed",
            "level": method_name,
            "timestamp": _scrub(str(event_dict.get("timestamp", ""))),
            "redaction_error": type(exc).__name__,
        }


# --------------------------------------------------------------------------- configuration


def _parse_level(level: str) -> int:
    mapping = logging.getLevelNamesMapping()
    try:
        return mapping[level.strip().upper()]
    except KeyError:
        names = ", ".join(n.lower() for n in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
        raise ValueError(f"unknown log level {level!r} (expected one of: {names})") from None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty(), or closed
        return False


def _shared_processors() -> list[Processor]:
    """Processors for every event, from structlog or from a stdlib logger."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Tracebacks become plain text here so that redact() sees them.
        structlog.processors.format_exc_info,
    ]


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted, not the one of the
    moment logging was configured: a stream replaced since (a test's captured output, a
    tool redirecting it) is never written after it was closed."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stdout``."""


def configure_logging(*, json: bool | None = None, level: str = "info") -> None:
    """Send structlog and stdlib logging to stdout through one redacting pipeline.

    ``json``: ``True`` for one JSON object per line, ``False`` for the console
    renderer, ``None`` (default) for JSON unless stdout is a terminal.
    ``level``: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.

    Calling it again replaces the previous configuration.  Uvicorn must be
    started with ``log_config=None`` so it keeps these handlers.
    """
    numeric_level = _parse_level(level)
    stream = sys.stdout
    use_json = json if json is not None else not _isatty(stream)

    shared = _shared_processors()
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(stream),
            exception_formatter=structlog.dev.plain_traceback,
        )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact,
            renderer,
        ],
    )
    handler = _StdoutHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)

    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
        routed.setLevel(logging.NOTSET)  # follow the root level set above
        routed.disabled = False
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric_level))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # A logger cached before configure_logging() ran would keep structlog's
        # defaults, which do not redact.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` (default: the caller's module)."""
    if name is None:
        return structlog.stdlib.get_logger(**initial_values)
    return structlog.stdlib.get_logger(name, **initial_values)


# --------------------------------------------------------------------------- ticket context


class TicketLink(Protocol):
    """What :func:`ticket_context` reads of a link (``store.rows.LinkRow`` has it)."""

    @property
    def id(self) -> int: ...
    @property
    def connection(self) -> str: ...
    @property
    def psa_ticket_id(self) -> str: ...
    @property
    def psa_number(self) -> str | None: ...
    @property
    def vendor_ticket_id(self) -> str | None: ...
    @property
    def vendor_number(self) -> str | None: ...


def ticket_context(link: TicketLink) -> AbstractContextManager[Any]:
    """Every log event inside the block names the ticket it is about: ``link_id``,
    ``psa_ticket`` (the number people know it by), ``connection`` and ``vendor_ticket``.

    Bound in context variables around per-ticket work (deciding, clocks, rules, a write),
    so an operator can grep one ticket's story out of the log without every call site
    passing the same four keys; the previous bindings come back when the block ends.
    """
    return bound_contextvars(**ticket_fields(link))


#: The keys :func:`ticket_fields` gives (to unbind them).
TICKET_KEYS = ("link_id", "psa_ticket", "connection", "vendor_ticket")


def ticket_fields(link: TicketLink) -> dict[str, Any]:
    """The log keys that name a link's ticket (see :func:`ticket_context`)."""
    return {
        "link_id": link.id,
        "psa_ticket": link.psa_number or link.psa_ticket_id,
        "connection": link.connection,
        "vendor_ticket": link.vendor_number or link.vendor_ticket_id,
    }
