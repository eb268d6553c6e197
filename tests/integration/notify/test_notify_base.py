"""The Sender protocol, Notification, the key check and the build_sender factory."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.errors import ConfigError, PermanentError
from ticketbridge.notify import (
    CHANNELS,
    EmailSender,
    Notification,
    Sender,
    SlackSender,
    SlackSettings,
    SmtpSettings,
    TeamsSender,
    WebhookSender,
    build_sender,
    settings_model,
)
from ticketbridge.notify.base import check_key

from .conftest import Receiver, SmtpServer

pytestmark = pytest.mark.anyio

KEY = "0123456789abcdef"


class TestNotification:
    def test_is_frozen_with_empty_context_by_default(self):
        """A Notification is an immutable value; context defaults to an empty mapping."""
        n = Notification(channel="email", target="a@b.example", subject="s", text="t", key=KEY)
        assert dict(n.context) == {}
        with pytest.raises(AttributeError):
            n.key = "other"  # type: ignore[misc]

    def test_equal_notifications_compare_equal(self):
        """Two notifications with the same fields are the same notification."""
        a = Notification("slack", "#noc", "s", "t", KEY, {"event": "x"})
        b = Notification("slack", "#noc", "s", "t", KEY, {"event": "x"})
        assert a == b


class TestCheckKey:
    @pytest.mark.parametrize("key", [KEY, "a", "rule-7:ticket/42", "k" * 200])
    def test_accepts_visible_ascii(self, key: str):
        """Keys of 1 to 200 visible ASCII characters pass unchanged."""
        assert check_key(key) == key

    @pytest.mark.parametrize("key", ["", " ", "a b", "a\r\nb", "é", "k" * 201, "\x00"])
    def test_refuses_anything_else(self, key: str):
        """Empty, spaces, control characters, non-ASCII or too long: PermanentError."""
        with pytest.raises(PermanentError, match="idempotency key"):
            check_key(key)


class TestBuildSender:
    @pytest.mark.parametrize(
        ("channel", "settings", "cls"),
        [
            ("email", {"host": "smtp.example", "from_address": "a@msp.example"}, EmailSender),
            ("slack", {"url": "https://hooks.slack.com/services/T/B/x"}, SlackSender),
            ("teams", {"url": "https://x.logic.azure.com/workflows/1?sig=s"}, TeamsSender),
            (
                "webhook",
                {"url": "https://siem.example/in", "secret": "whsec-base-test-77"},
                WebhookSender,
            ),
        ],
    )
    async def test_builds_each_channel_from_a_mapping(
        self, channel: str, settings: dict[str, Any], cls: type[Any]
    ):
        """Each channel kind gets its sender, which satisfies the Sender protocol."""
        sender = build_sender(channel, settings)
        try:
            assert type(sender) is cls
            assert isinstance(sender, Sender)
            assert sender.channel == channel
        finally:
            await sender.aclose()

    def test_channels_and_settings_models_match(self):
        """Every listed channel has a settings model."""
        assert CHANNELS == ("email", "slack", "teams", "webhook")
        assert settings_model("email") is SmtpSettings
        assert settings_model("slack") is SlackSettings

    async def test_accepts_a_settings_model(self):
        """A ready settings model is used as is."""
        settings = SlackSettings(url="https://hooks.slack.com/services/T/B/x")
        sender = build_sender("slack", settings, retry=RetrySettings(attempts=1))
        try:
            assert isinstance(sender, SlackSender)
            assert sender.settings is settings
        finally:
            await sender.aclose()

    def test_unknown_channel_is_a_config_error(self):
        """An unknown kind names the known ones."""
        with pytest.raises(ConfigError, match="unknown notification channel 'sms'") as info:
            build_sender("sms", {})
        assert info.value.problems[0][2] == "one of: email, slack, teams, webhook"

    def test_wrong_settings_model_is_a_config_error(self):
        """Slack settings cannot configure a Teams channel."""
        with pytest.raises(ConfigError, match="does not configure a teams channel"):
            build_sender("teams", SlackSettings(url="https://hooks.slack.com/services/T/B/x"))

    def test_every_problem_is_listed_without_secrets(self):
        """Invalid settings list each problem with its path; URL credentials are not echoed."""
        with pytest.raises(ConfigError) as info:
            build_sender("webhook", {"url": "https://bob:hunter2pw@siem.example/", "sekret": "x"})
        paths = [path for path, _, _ in info.value.problems]
        assert paths == ["webhook.url", "webhook.sekret"]
        assert "hunter2pw" not in str(info.value)

    def test_settings_errors_do_not_echo_inputs(self):
        """Even a raw ValidationError from a settings model does not repeat the input."""
        with pytest.raises(ValidationError) as info:
            SmtpSettings(
                host="h", from_address="a@b.example", username="u", password="p4ss-w0rd-42", ssl=1
            )
        assert "p4ss-w0rd-42" not in str(info.value)

    def test_email_settings_problems(self):
        """SMTP settings problems come back as ConfigError with the channel as path."""
        with pytest.raises(ConfigError, match="either starttls") as info:
            build_sender(
                "email",
                {"host": "h", "from_address": "a@b.example", "starttls": True, "ssl": True},
            )
        assert info.value.problems[0][0] == "email"


class TestDeliverThroughFactory:
    async def test_email_notification_reaches_the_smtp_server(self, smtp_server: SmtpServer):
        """build_sender + deliver: the Notification arrives as a mail with its key's Message-ID."""
        sender = build_sender("email", smtp_server.settings())
        n = Notification(
            channel="email",
            target="ops@client.example",
            subject="Escalation",
            text="Ticket 4711 breached P1.",
            key=KEY,
        )
        try:
            message_id = await sender.deliver(n)
        finally:
            await sender.aclose()
        (got,) = smtp_server.handler.messages
        assert got.message["Message-ID"] == message_id == f"<{KEY}@ticketbridge.msp.example>"
        assert got.message["X-Ticketbridge-Key"] == KEY

    async def test_webhook_notification_reaches_the_receiver(self, receiver: Receiver):
        """build_sender + deliver for the generic webhook posts the documented body."""
        sender = build_sender(
            "webhook", {"url": receiver.url("/in")}, retry=RetrySettings(attempts=1)
        )
        n = Notification("webhook", "siem", "s", "t", KEY, {"event": "sla.warning"})
        try:
            assert await sender.deliver(n) == KEY
        finally:
            await sender.aclose()
        assert json.loads(receiver.requests[0].body) == {
            "key": KEY,
            "event": "sla.warning",
            "text": "t",
            "ticket": {},
        }
