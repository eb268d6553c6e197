"""ticketbridge.log: one rendered, redacted event per line, whatever logger wrote it."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import structlog

from ticketbridge.log import (
    REDACTED,
    bind_contextvars,
    configure_logging,
    get_logger,
    redact,
    register_secret,
)

_TOUCHED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "apscheduler",
    "httpx",
    "httpcore",
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the root logger, the third-party loggers and structlog as they were."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (list(lg.handlers), lg.propagate, lg.level)
        for name, lg in ((n, logging.getLogger(n)) for n in _TOUCHED_LOGGERS)
    }
    yield
    for handler in root.handlers:
        if handler not in saved_root[0]:
            handler.close()
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for name, (handlers, propagate, level) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.propagate = propagate
        lg.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _secret(prefix: str = "s") -> str:
    """A value unique to one test, so the process-wide registry cannot mix tests up."""
    return f"{prefix}-{secrets.token_hex(12)}"


def _events(out: str) -> list[dict[str, Any]]:
    """Every stdout line parsed as one JSON object."""
    lines = out.splitlines()
    events = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in events), lines
    return events


class TestJsonRendering:
    """configure_logging(json=True): the line format."""

    def test_one_json_object_per_line_with_event_level_timestamp(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each event, multi-line message and traceback included, is one JSON line."""
        configure_logging(json=True)
        log = get_logger("ticketbridge.test")
        log.info("first")
        log.warning("second\nspans lines")
        try:
            raise RuntimeError("kaput")
        except RuntimeError:
            log.exception("third")

        events = _events(capsys.readouterr().out)

        assert [e["event"] for e in events] == ["first", "second\nspans lines", "third"]
        assert [e["level"] for e in events] == ["info", "warning", "error"]
        assert "RuntimeError: kaput" in events[2]["exception"]
        for event in events:
            stamp = datetime.fromisoformat(event["timestamp"])
            assert stamp.utcoffset() == timedelta(0)
            assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)

    def test_stdlib_records_share_the_format(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A stdlib record (uvicorn) becomes the same kind of JSON event, %-args applied."""
        configure_logging(json=True)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)

        (event,) = _events(capsys.readouterr().out)

        assert event["event"] == "Started server process [4242]"
        assert event["logger"] == "uvicorn.error"
        assert event["level"] == "info"
        assert "timestamp" in event

    def test_third_party_handlers_are_rerouted(self, capsys: pytest.CaptureFixture[str]) -> None:
        """uvicorn's own handler is dropped and its records reach ours: one line, JSON."""
        access = logging.getLogger("uvicorn.access")
        access.addHandler(logging.StreamHandler())
        access.propagate = False
        configure_logging(json=True)

        access.info('127.0.0.1 - "GET /healthz HTTP/1.1" 200')

        (event,) = _events(capsys.readouterr().out)
        assert event["logger"] == "uvicorn.access"

    def test_httpx_is_kept_at_warning(self, capsys: pytest.CaptureFixture[str]) -> None:
        """httpx/httpcore INFO chatter is dropped, their warnings are kept."""
        configure_logging(json=True, level="debug")
        logging.getLogger("httpx").info("HTTP Request: GET https://vendor/api 200")
        logging.getLogger("httpcore.connection").debug("connect_tcp.started")
        logging.getLogger("httpx").warning("connection pool full")

        events = _events(capsys.readouterr().out)

        assert [e["event"] for e in events] == ["connection pool full"]

    def test_level_filters_structlog_and_stdlib(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Below the configured level nothing is written, from either kind of logger."""
        configure_logging(json=True, level="warning")
        get_logger("ticketbridge.test").info("structlog info")
        logging.getLogger("apscheduler.scheduler").info("stdlib info")
        get_logger("ticketbridge.test").error("structlog error")

        events = _events(capsys.readouterr().out)

        assert [e["event"] for e in events] == ["structlog error"]

    def test_contextvars_are_merged(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Values bound with bind_contextvars appear on structlog and stdlib events alike."""
        configure_logging(json=True)
        bind_contextvars(ticket_id="T-1001")
        get_logger("ticketbridge.test").info("from structlog")
        logging.getLogger("uvicorn.error").info("from stdlib")

        events = _events(capsys.readouterr().out)

        assert [e.get("ticket_id") for e in events] == ["T-1001", "T-1001"]

    def test_json_is_the_default_off_a_terminal(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With json=None and stdout not a terminal (captured), the output is JSON."""
        configure_logging()
        get_logger("ticketbridge.test").info("auto")

        (event,) = _events(capsys.readouterr().out)
        assert event["event"] == "auto"

    def test_configuring_twice_does_not_duplicate_lines(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A second configure_logging replaces the first handler instead of adding one."""
        configure_logging(json=True)
        configure_logging(json=True)
        get_logger("ticketbridge.test").info("once")

        assert len(_events(capsys.readouterr().out)) == 1

    def test_unknown_level_is_refused(self) -> None:
        """A misspelt level is an error, not a silent default."""
        with pytest.raises(ValueError, match="verbose"):
            configure_logging(json=True, level="verbose")


class TestConsoleRendering:
    """configure_logging(json=False): human-readable, still redacted."""

    def test_console_output_is_redacted(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The console renderer gets the redacted event, traceback included."""
        secret = _secret("console")
        register_secret(secret)
        configure_logging(json=False)
        log = get_logger("ticketbridge.test")
        try:
            raise ConnectionError(f"refused {secret}")
        except ConnectionError:
            log.exception("poll failed", api_key="plain-key-value", ticket="T-7")

        out = capsys.readouterr().out

        assert not out.lstrip().startswith("{")
        assert "poll failed" in out
        assert "ticket=T-7" in out
        assert "ConnectionError: refused ***" in out
        assert secret not in out
        assert "plain-key-value" not in out


class TestKeyRedaction:
    """Values under secret-looking keys, at any depth."""

    def test_nested_secret_keys_are_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Keys in nested dicts and lists are matched case-insensitively and masked."""
        configure_logging(json=True)
        get_logger("ticketbridge.test").info(
            "request",
            password="hunter2-top",
            request={
                "headers": {"Authorization": "Negotiate abcdefghijkl", "Accept": "json"},
                "body": [{"client_secret": "cs-value-1"}, {"note": "printer on fire"}],
            },
            creds={"DB_PASSWORD": "pw-value-2", "X-Api-Key": "ak-value-3"},
            systems=[{"name": "servicenow", "settings": {"refresh_token": "rt-value-4"}}],
            cookie={"session": "sess-value-5"},
            signing_key=b"binary-key-6",
        )

        out = capsys.readouterr().out
        (event,) = _events(out)

        for leaked in (
            "hunter2-top",
            "abcdefghijkl",
            "cs-value-1",
            "pw-value-2",
            "ak-value-3",
            "rt-value-4",
            "sess-value-5",
            "binary-key-6",
        ):
            assert leaked not in out
        assert event["password"] == REDACTED
        assert event["request"]["headers"] == {"Authorization": REDACTED, "Accept": "json"}
        assert event["request"]["body"] == [
            {"client_secret": REDACTED},
            {"note": "printer on fire"},
        ]
        assert event["creds"] == {"DB_PASSWORD": REDACTED, "X-Api-Key": REDACTED}
        assert event["systems"] == [{"name": "servicenow", "settings": {"refresh_token": REDACTED}}]
        assert event["cookie"] == REDACTED
        assert event["signing_key"] == REDACTED

    def test_absent_secrets_stay_visible(self, capsys: pytest.CaptureFixture[str]) -> None:
        """None and "" under a secret key are kept: they tell a secret is missing."""
        configure_logging(json=True)
        get_logger("ticketbridge.test").warning("no credentials", token=None, api_key="")

        (event,) = _events(capsys.readouterr().out)

        assert event["token"] is None
        assert event["api_key"] == ""

    def test_ordinary_fields_are_untouched(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Non-secret keys and text come out exactly as logged."""
        configure_logging(json=True)
        get_logger("ticketbridge.test").info(
            "ticket 1234 synced to vendor INC0012 in 3.2s",
            psa_ticket=1234,
            vendor="servicenow",
            url="https://dev.service-now.com/api/now/table/incident?sysparm_limit=50&page=2",
            notes=["Basic troubleshooting done", "customer asked for a bearer token how-to"],
            elapsed=3.2,
            mirrored=True,
        )

        (event,) = _events(capsys.readouterr().out)

        assert event["event"] == "ticket 1234 synced to vendor INC0012 in 3.2s"
        assert event["psa_ticket"] == 1234
        assert event["vendor"] == "servicenow"
        assert event["url"] == (
            "https://dev.service-now.com/api/now/table/incident?sysparm_limit=50&page=2"
        )
        assert event["notes"] == [
            "Basic troubleshooting done",
            "customer asked for a bearer token how-to",
        ]
        assert event["elapsed"] == 3.2
        assert event["mirrored"] is True


class TestRegisteredSecrets:
    """register_secret(): the value is masked inside any string."""

    def test_registered_value_is_masked_everywhere(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """In the message, in field values, in lists and in stdlib %-args."""
        secret = _secret("reg")
        register_secret(secret)
        configure_logging(json=True)
        get_logger("ticketbridge.test").info(
            f"login as svc with {secret}!",
            detail=f"prefix{secret}suffix",
            items=["ok", f"x {secret} y"],
        )
        logging.getLogger("apscheduler").warning("job args: %s", (1, secret))

        out = capsys.readouterr().out
        first, second = _events(out)

        assert secret not in out
        assert first["event"] == "login as svc with ***!"
        assert first["detail"] == "prefix***suffix"
        assert first["items"] == ["ok", "x *** y"]
        assert second["event"] == "job args: (1, '***')"

    def test_exception_traceback_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The rendered traceback, chained cause included, never shows the secret."""
        secret = _secret("tb")
        register_secret(secret)
        configure_logging(json=True)

        def call_vendor(credential: str) -> None:
            raise PermissionError(f"vendor rejected credential {credential}")

        try:
            try:
                call_vendor(secret)
            except PermissionError as exc:
                raise RuntimeError(f"sync failed ({secret})") from exc
        except RuntimeError:
            get_logger("ticketbridge.test").exception("sync failed")

        out = capsys.readouterr().out
        (event,) = _events(out)

        assert secret not in out
        assert "PermissionError: vendor rejected credential ***" in event["exception"]
        assert "RuntimeError: sync failed (***)" in event["exception"]

    def test_stdlib_exception_traceback_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A traceback logged through a stdlib logger (exc_info) is masked too."""
        secret = _secret("stdlib-tb")
        register_secret(secret)
        configure_logging(json=True)
        try:
            raise ValueError(f"bad webhook secret {secret}")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

        out = capsys.readouterr().out
        (event,) = _events(out)

        assert secret not in out
        assert "ValueError: bad webhook secret ***" in event["exception"]

    def test_exception_as_field_value_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An exception object passed as a field is rendered through a masked repr."""
        secret = _secret("field")
        register_secret(secret)
        configure_logging(json=True)
        get_logger("ticketbridge.test").warning("retrying", error=OSError(f"EPIPE {secret}"))

        out = capsys.readouterr().out
        (event,) = _events(out)

        assert secret not in out
        assert event["error"] == "OSError('EPIPE ***')"

    def test_url_encoded_spelling_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A value with URL-special characters is masked in its percent-encoded form too."""
        secret = f"p@ss/w0rd+{secrets.token_hex(6)}"
        register_secret(secret)
        configure_logging(json=True)
        get_logger("ticketbridge.test").info(f"GET /callback?state={quote(secret, safe='')}")

        out = capsys.readouterr().out

        assert quote(secret, safe="") not in out
        assert secret not in out
        assert _events(out)[0]["event"] == "GET /callback?state=***"

    def test_short_values_are_ignored(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Registering a value under 4 characters would shred text: it is not masked."""
        register_secret("abc")
        configure_logging(json=True)
        get_logger("ticketbridge.test").info("abc def abcdef")

        (event,) = _events(capsys.readouterr().out)

        assert event["event"] == "abc def abcdef"


class TestPatternRedaction:
    """Credentials recognised by their shape, registered or not."""

    def test_bearer_and_basic_credentials(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Bearer tokens, Basic credentials and Authorization header values are masked."""
        jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl"
        basic = base64.b64encode(b"api-user:basic-pass-99").decode()
        configure_logging(json=True)
        log = get_logger("ticketbridge.test")
        log.info(f"sent Bearer {jwt} to vendor")
        log.info(f"headers {{'Authorization': 'Basic {basic}', 'Accept': 'application/json'}}")
        log.info("Authorization: Token opaque-token-42 rejected")

        out = capsys.readouterr().out
        events = [e["event"] for e in _events(out)]

        for leaked in (jwt, basic, "opaque-token-42"):
            assert leaked not in out
        assert events[0] == "sent Bearer *** to vendor"
        assert events[1] == "headers {'Authorization': '***', 'Accept': 'application/json'}"
        assert events[2] == "Authorization: *** rejected"

    def test_prose_about_auth_schemes_is_kept(self, capsys: pytest.CaptureFixture[str]) -> None:
        """'Basic authentication' and 'bearer token' in prose are not credentials."""
        configure_logging(json=True)
        text = "Basic authentication is disabled; ask for a bearer token instead"
        get_logger("ticketbridge.test").info(text)

        (event,) = _events(capsys.readouterr().out)

        assert event["event"] == text

    def test_url_userinfo_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """user:password@ in any URL, including a SQLAlchemy URL, is masked."""
        configure_logging(json=True)
        get_logger("ticketbridge.test").info(
            "connecting",
            store="postgresql+psycopg://ticketbridge:Pg-Pass-77@postgres:5432/ticketbridge",
            target="fetching https://svc-user:Web-Pass-88@acme.service-now.com/api/now/table",
        )

        out = capsys.readouterr().out
        (event,) = _events(out)

        assert "Pg-Pass-77" not in out
        assert "Web-Pass-88" not in out
        assert "svc-user" not in out
        assert event["store"] == "postgresql+psycopg://***@postgres:5432/ticketbridge"
        assert event["target"] == "fetching https://***@acme.service-now.com/api/now/table"

    def test_url_query_credentials_are_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """token=, api_key=, key=, password=, secret= are masked; other parameters kept."""
        configure_logging(json=True)
        url = (
            "https://vendor.example/api?token=tok-1111&page=2&api_key=ak-2222"
            "&key=k-3333&password=pw-4444&secret=sec-5555&limit=50"
        )
        get_logger("ticketbridge.test").info(f"GET {url} -> 500")

        out = capsys.readouterr().out
        (event,) = _events(out)

        for leaked in ("tok-1111", "ak-2222", "k-3333", "pw-4444", "sec-5555"):
            assert leaked not in out
        assert event["event"] == (
            "GET https://vendor.example/api?token=***&page=2&api_key=***"
            "&key=***&password=***&secret=***&limit=50 -> 500"
        )

    def test_key_value_pairs_in_text_are_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        """password=... in a DSN and 'client_secret': '...' in a repr are masked."""
        configure_logging(json=True)
        get_logger("ticketbridge.test").error(
            "connect failed: host=db port=5432 password=dsn-pass-1 user=tb; "
            "settings={'client_id': 'cid', 'client_secret': 'repr-secret-2'}"
        )

        out = capsys.readouterr().out
        (event,) = _events(out)

        assert "dsn-pass-1" not in out
        assert "repr-secret-2" not in out
        assert event["event"] == (
            "connect failed: host=db port=5432 password=*** user=tb; "
            "settings={'client_id': 'cid', 'client_secret': '***'}"
        )


class TestRedactProcessor:
    """redact() as a processor on its own."""

    def test_never_raises_on_unrepresentable_values(self) -> None:
        """An object whose repr() raises is replaced by a placeholder, not an exception."""

        class Broken:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        event: dict[Any, Any] = {"event": "x", "thing": Broken(), (1, 2): "tuple key"}
        out = redact(None, "info", event)

        assert out["thing"] == "<unrepresentable Broken>"
        assert out["(1, 2)"] == "tuple key"
        assert out["event"] == "x"


class TestGetLogger:
    """get_logger(): named structlog loggers on the stdlib tree."""

    def test_name_is_the_logger_field(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The given name, or else the calling module's, is the event's logger."""
        configure_logging(json=True)
        get_logger("ticketbridge.engine").info("named")
        get_logger().info("unnamed")

        events = _events(capsys.readouterr().out)

        assert [e["logger"] for e in events] == ["ticketbridge.engine", __name__]

    def test_initial_values_are_bound(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Keyword arguments are bound to every event of the logger."""
        configure_logging(json=True)
        get_logger("ticketbridge.engine", connection="acme-sn").info("bound")

        (event,) = _events(capsys.readouterr().out)

        assert event["connection"] == "acme-sn"


class TestOutputStream:
    def test_logs_go_to_the_current_stdout_never_a_closed_one(self, monkeypatch) -> None:
        """stdout replaced and the old one closed after configuring (a test's captured
        output, a tool redirecting it): a record from another thread's library logger goes
        to the stdout of the moment, with no "Logging error" about a closed file."""
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", first)
        configure_logging(json=True, level="info")
        monkeypatch.setattr(sys, "stdout", second)
        first.close()
        errors = io.StringIO()
        monkeypatch.setattr(sys, "stderr", errors)
        logging.getLogger("mail.log").warning("%r EOF received", ("127.0.0.1", 1))
        assert "" == errors.getvalue()
        assert ["'127.0.0.1', 1) EOF received"] == [
            e["event"][-len("'127.0.0.1', 1) EOF received") :] for e in _events(second.getvalue())
        ]
