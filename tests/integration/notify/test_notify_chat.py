"""Slack, Teams and generic webhook senders against a loopback HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.errors import (
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from ticketbridge.notify import (
    SIGNATURE_HEADER,
    Notification,
    SlackSender,
    SlackSettings,
    TeamsSender,
    TeamsSettings,
    WebhookSender,
    WebhookSettings,
    sign_body,
)
from ticketbridge.notify.chat import split_webhook_url

from .conftest import Receiver, Reply

pytestmark = pytest.mark.anyio

KEY = "0123456789abcdef"
SLACK_PATH = "/services/T0001/B0002/xoxSecretToken42"
TEAMS_PATH = (
    "/workflows/5a1b2c/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=TeamsSig-abc_123"
)
HOOK_PATH = "/hooks/ticketbridge"
SECRET = "whsec-0123456789"
ONE_TRY = RetrySettings(attempts=1)
TWO_TRIES = RetrySettings(attempts=2, wait_min=0.0, wait_max=0.0)

Factory = Callable[..., Any]


@pytest.fixture
async def senders() -> AsyncIterator[list[Any]]:
    """Senders made by a test, closed after it (before the receiver stops)."""
    made: list[Any] = []
    yield made
    for sender in made:
        await sender.aclose()


@pytest.fixture
def slack(receiver: Receiver, senders: list[Any]) -> Factory:
    def make(retry: RetrySettings = ONE_TRY, **settings: Any) -> SlackSender:
        s = SlackSender(SlackSettings(url=receiver.url(SLACK_PATH), **settings), retry=retry)
        senders.append(s)
        return s

    return make


@pytest.fixture
def teams(receiver: Receiver, senders: list[Any]) -> Factory:
    def make(retry: RetrySettings = ONE_TRY, **settings: Any) -> TeamsSender:
        s = TeamsSender(TeamsSettings(url=receiver.url(TEAMS_PATH), **settings), retry=retry)
        senders.append(s)
        return s

    return make


@pytest.fixture
def webhook(receiver: Receiver, senders: list[Any]) -> Factory:
    def make(retry: RetrySettings = ONE_TRY, **settings: Any) -> WebhookSender:
        s = WebhookSender(WebhookSettings(url=receiver.url(HOOK_PATH), **settings), retry=retry)
        senders.append(s)
        return s

    return make


class TestSplitWebhookUrl:
    def test_origin_and_path_with_query_kept_verbatim(self):
        """The origin becomes the base URL; path and percent-encoded query stay as given."""
        url = "https://prod-12.westeurope.logic.azure.com:443" + TEAMS_PATH
        assert split_webhook_url(url) == (
            "https://prod-12.westeurope.logic.azure.com:443",
            TEAMS_PATH,
        )

    def test_bare_host_gets_root_path(self):
        """A URL without a path posts to '/'."""
        assert split_webhook_url("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", "/")

    @pytest.mark.parametrize(
        "url",
        ["ftp://files.example/x", "file:///etc/passwd", "javascript:alert(1)", "hooks.slack.com/x"],
    )
    def test_only_http_and_https(self, url: str):
        """Other schemes (or none) are refused."""
        with pytest.raises(ValueError, match="must start with https://"):
            split_webhook_url(url)

    def test_userinfo_is_refused_without_echoing_it(self):
        """Credentials in the URL are refused, and the message does not repeat them."""
        with pytest.raises(ValueError, match="user:password@") as info:
            split_webhook_url("https://bob:hunter2secret@hooks.example/x")
        assert "hunter2secret" not in str(info.value)

    @pytest.mark.parametrize(
        "url", ["https:///nohost", "https://h.example:99999/x", "https://a b/"]
    )
    def test_malformed(self, url: str):
        """No host, a bad port or whitespace: refused."""
        with pytest.raises(ValueError, match="webhook URL"):
            split_webhook_url(url)

    def test_settings_validate_the_url(self):
        """The settings models refuse a bad URL and keep a good one secret in their repr."""
        with pytest.raises(ValidationError, match="must start with https://"):
            SlackSettings(url="ftp://x.example/hook")
        s = SlackSettings(url="https://hooks.slack.com" + SLACK_PATH)
        assert "xoxSecretToken42" not in repr(s)


class TestSlackSender:
    async def test_posts_exact_json_to_the_webhook_path(self, receiver: Receiver, slack: Factory):
        """One POST of {"text": ...} to the webhook's path, as JSON; send returns the key."""
        assert await slack().send("Ticket 4711 breached P1.", KEY, subject="Escalation") == KEY
        (req,) = receiver.requests
        assert req.method == "POST"
        assert req.target == SLACK_PATH
        assert req.headers["content-type"] == "application/json"
        assert req.headers["user-agent"].startswith("ticketbridge/")
        assert json.loads(req.body) == {"text": "*Escalation*\nTicket 4711 breached P1."}

    async def test_markup_in_ticket_text_is_escaped(self, receiver: Receiver, slack: Factory):
        """<!channel>, links and & in ticket text arrive escaped, so they cannot ping or link."""
        await slack().send("Client wrote: <!channel> see <http://x|here> & reply", KEY)
        assert json.loads(receiver.requests[0].body) == {
            "text": "Client wrote: &lt;!channel&gt; see &lt;http://x|here&gt; &amp; reply"
        }

    async def test_escaping_can_be_turned_off(self, receiver: Receiver, slack: Factory):
        """escape_text: false passes trusted template markup through."""
        await slack(escape_text=False).send("<https://psa.example/t/1|Ticket 1>", KEY)
        assert json.loads(receiver.requests[0].body) == {
            "text": "<https://psa.example/t/1|Ticket 1>"
        }

    async def test_blocks_are_sent_with_text_fallback(self, receiver: Receiver, slack: Factory):
        """Block Kit blocks go in "blocks"; "text" stays as the notification fallback."""
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*P1* breached"}}]
        n = Notification(
            channel="slack",
            target="#noc",
            subject="",
            text="P1 breached",
            key=KEY,
            context={"blocks": blocks},
        )
        await slack().deliver(n)
        assert json.loads(receiver.requests[0].body) == {"text": "P1 breached", "blocks": blocks}

    async def test_nothing_to_post_is_permanent(self, receiver: Receiver, slack: Factory):
        """An empty message is refused before any request."""
        with pytest.raises(PermanentError, match="nothing to post"):
            await slack().send("", KEY)
        assert receiver.requests == []

    async def test_429_raises_rate_limited_with_retry_after(
        self, receiver: Receiver, slack: Factory
    ):
        """429 with Retry-After: 7, no attempts left: RateLimitedError carrying 7 seconds."""
        receiver.reply(Reply(429, b"rate_limited", {"Retry-After": "7"}))
        with pytest.raises(RateLimitedError) as info:
            await slack().send("t", KEY)
        assert info.value.retry_after == 7.0
        assert info.value.uncertain is False
        assert len(receiver.requests) == 1

    async def test_429_is_retried_after_the_wait(self, receiver: Receiver, slack: Factory):
        """429 then 200: the call waits Retry-After and succeeds, posting the same body twice."""
        receiver.reply(Reply(429, b"rate_limited", {"Retry-After": "0"}), Reply(200, b"ok"))
        assert await slack(retry=TWO_TRIES).send("t", KEY) == KEY
        assert len(receiver.requests) == 2
        assert receiver.requests[0].body == receiver.requests[1].body

    async def test_5xx_is_transient_uncertain_and_not_retried(
        self, receiver: Receiver, slack: Factory
    ):
        """500: the post may have landed, so it is not repeated within the call."""
        receiver.reply(Reply(500, b"rollup_error"))
        with pytest.raises(TransientError) as info:
            await slack(retry=TWO_TRIES).send("t", KEY)
        assert info.value.status == 500
        assert info.value.uncertain is True
        assert len(receiver.requests) == 1

    async def test_errors_do_not_reveal_the_webhook_token(self, receiver: Receiver, slack: Factory):
        """The URL path is Slack's credential: error messages show /services/*** instead."""
        receiver.reply(Reply(404, b"channel_not_found"))
        with pytest.raises(NotFoundError) as info:
            await slack().send("t", KEY)
        assert "xoxSecretToken42" not in str(info.value)
        assert "/services/***" in str(info.value)
        assert "channel_not_found" in str(info.value)

    async def test_percent_encoded_path_is_hidden_too(self, receiver: Receiver, senders: list[Any]):
        """A path with escapes is cut out of errors in its decoded spelling as well."""
        sender = SlackSender(
            SlackSettings(url=receiver.url("/services/T%20X/Sec%2Bret99")), retry=ONE_TRY
        )
        senders.append(sender)
        receiver.reply(Reply(400, b"invalid_payload"))
        with pytest.raises(PermanentError) as info:
            await sender.send("t", KEY)
        assert receiver.requests[0].target == "/services/T%20X/Sec%2Bret99"
        assert "ret99" not in str(info.value)

    async def test_connection_refused_is_transient_and_hides_the_token(
        self, closed_port: int, senders: list[Any]
    ):
        """Nobody listening: TransientError(uncertain=False), URL path not in the message."""
        sender = SlackSender(
            SlackSettings(url=f"http://127.0.0.1:{closed_port}{SLACK_PATH}"), retry=ONE_TRY
        )
        senders.append(sender)
        with pytest.raises(TransientError, match="cannot connect") as info:
            await sender.send("t", KEY)
        assert info.value.uncertain is False
        assert "xoxSecretToken42" not in str(info.value)


class TestTeamsSender:
    async def test_posts_an_adaptive_card_message(self, receiver: Receiver, teams: Factory):
        """The Workflows payload: a message with one Adaptive Card attachment; 202 is success."""
        receiver.reply(Reply(202, b""))
        assert await teams().send("Ticket 4711 breached P1.", KEY, subject="Escalation") == KEY
        (req,) = receiver.requests
        assert req.target == TEAMS_PATH
        assert req.headers["content-type"] == "application/json"
        assert json.loads(req.body) == {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.2",
                        "body": [
                            {
                                "type": "TextBlock",
                                "text": "Escalation",
                                "weight": "Bolder",
                                "size": "Medium",
                                "wrap": True,
                            },
                            {"type": "TextBlock", "text": "Ticket 4711 breached P1.", "wrap": True},
                        ],
                    },
                }
            ],
        }

    async def test_text_only_card_has_one_text_block(self, receiver: Receiver, teams: Factory):
        """Without a subject the card holds just the text."""
        n = Notification(channel="teams", target="NOC", subject="", text="hello", key=KEY)
        await teams().deliver(n)
        card = json.loads(receiver.requests[0].body)["attachments"][0]["content"]
        assert card["body"] == [{"type": "TextBlock", "text": "hello", "wrap": True}]

    async def test_legacy_message_card(self, receiver: Receiver, teams: Factory):
        """card: message_card sends the Office 365 connector MessageCard."""
        receiver.reply(Reply(200, b"1"))
        await teams(card="message_card").send("Ticket 4711 breached P1.", KEY, subject="Escalation")
        assert json.loads(receiver.requests[0].body) == {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": "Escalation",
            "title": "Escalation",
            "text": "Ticket 4711 breached P1.",
        }

    async def test_legacy_throttling_in_a_200_body_is_rate_limited(
        self, receiver: Receiver, teams: Factory
    ):
        """Legacy connectors answer throttling with 200 and an error text: RateLimitedError."""
        receiver.reply(Reply(200, b"Microsoft Teams endpoint returned HTTP error 429"))
        with pytest.raises(RateLimitedError) as info:
            await teams(card="message_card").send("t", KEY)
        assert "TeamsSig" not in str(info.value)

    async def test_429_retry_after_is_honoured(self, receiver: Receiver, teams: Factory):
        """Power Automate throttling (429 + Retry-After) is retried within the call."""
        receiver.reply(Reply(429, b"", {"Retry-After": "0"}), Reply(202, b""))
        assert await teams(retry=TWO_TRIES).send("t", KEY) == KEY
        assert [r.target for r in receiver.requests] == [TEAMS_PATH, TEAMS_PATH]

    async def test_5xx_is_transient_and_hides_the_signature(
        self, receiver: Receiver, teams: Factory
    ):
        """502 from the flow: TransientError(uncertain=True); the sig query is not in it."""
        receiver.reply(Reply(502, b"Bad Gateway"))
        with pytest.raises(TransientError) as info:
            await teams().send("t", KEY)
        assert info.value.status == 502
        assert info.value.uncertain is True
        assert "TeamsSig" not in str(info.value)
        assert "/workflows/***" in str(info.value)


class TestWebhookSender:
    async def test_posts_signed_json_with_idempotency_key(
        self, receiver: Receiver, webhook: Factory
    ):
        """Body {key, event, text, ticket}; Idempotency-Key; HMAC-SHA256 of the raw body."""
        ticket = {"id": "4711", "opened": datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC), "p": 1}
        sent = await webhook(secret=SECRET).send(
            "Ticket 4711 breached P1.", KEY, event="sla.breached", ticket=ticket
        )
        assert sent == KEY
        (req,) = receiver.requests
        assert req.target == HOOK_PATH
        assert req.headers["idempotency-key"] == KEY
        assert req.headers["content-type"] == "application/json"
        assert json.loads(req.body) == {
            "key": KEY,
            "event": "sla.breached",
            "text": "Ticket 4711 breached P1.",
            "ticket": {"id": "4711", "opened": "2025-03-04T05:06:07+00:00", "p": 1},
        }
        expected = hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
        assert req.headers["x-ticketbridge-signature"] == f"sha256={expected}"
        assert sign_body(SECRET, req.body) == f"sha256={expected}"

    async def test_signature_covers_non_ascii_bytes_exactly(
        self, receiver: Receiver, webhook: Factory
    ):
        """The signature is over the bytes on the wire, UTF-8 included."""
        await webhook(secret=SECRET).send("Störung ✓", KEY)
        req = receiver.requests[0]
        assert json.loads(req.body)["text"] == "Störung ✓"
        expected = hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
        assert req.headers["x-ticketbridge-signature"] == f"sha256={expected}"
        tampered = req.body.replace("✓".encode(), b"x")
        assert hmac.new(SECRET.encode(), tampered, hashlib.sha256).hexdigest() != expected

    async def test_no_secret_no_signature(self, receiver: Receiver, webhook: Factory):
        """Without a secret no signature header is sent; the defaults fill event and ticket."""
        await webhook().send("hello", KEY)
        req = receiver.requests[0]
        assert "x-ticketbridge-signature" not in req.headers
        assert json.loads(req.body) == {
            "key": KEY,
            "event": "notification",
            "text": "hello",
            "ticket": {},
        }

    async def test_deliver_takes_event_and_ticket_from_context(
        self, receiver: Receiver, webhook: Factory
    ):
        """Notification.context supplies the event name and the ticket object."""
        n = Notification(
            channel="webhook",
            target="siem",
            subject="ignored by this channel",
            text="t",
            key=KEY,
            context={"event": "escalation", "ticket": {"id": "9"}},
        )
        assert await webhook().deliver(n) == KEY
        assert json.loads(receiver.requests[0].body) == {
            "key": KEY,
            "event": "escalation",
            "text": "t",
            "ticket": {"id": "9"},
        }

    async def test_uncertain_failure_not_retried_by_default(
        self, receiver: Receiver, webhook: Factory
    ):
        """503 may mean it arrived: raised as uncertain after one request."""
        receiver.reply(Reply(503, b"busy"), Reply(200, b"ok"))
        with pytest.raises(TransientError) as info:
            await webhook(retry=TWO_TRIES).send("t", KEY)
        assert info.value.uncertain is True
        assert len(receiver.requests) == 1

    async def test_idempotent_receiver_is_retried_with_same_key_and_signature(
        self, receiver: Receiver, webhook: Factory
    ):
        """idempotent_receiver: a 503 is retried; the repeat carries the same key and body."""
        receiver.reply(Reply(503, b"busy"), Reply(200, b"ok"))
        await webhook(retry=TWO_TRIES, secret=SECRET, idempotent_receiver=True).send("t", KEY)
        first, second = receiver.requests
        assert first.body == second.body
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == KEY
        assert (
            first.headers["x-ticketbridge-signature"] == second.headers["x-ticketbridge-signature"]
        )

    async def test_read_timeout_is_uncertain(self, receiver: Receiver, webhook: Factory):
        """The receiver does not answer in time: TransientError(uncertain=True), bounded."""
        receiver.reply(Reply(200, b"ok", delay=1.0))
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out") as info:
            await webhook(timeout=0.2).send("t", KEY)
        assert info.value.uncertain is True
        assert time.monotonic() - started < 0.9

    async def test_4xx_is_permanent(self, receiver: Receiver, webhook: Factory):
        """422 from the receiver: the payload will not become acceptable by retrying."""
        receiver.reply(Reply(422, b'{"error":"bad event"}'))
        with pytest.raises(PermanentError) as info:
            await webhook().send("t", KEY)
        assert info.value.status == 422

    async def test_unserialisable_ticket_is_permanent(self, receiver: Receiver, webhook: Factory):
        """A ticket value JSON cannot carry is refused before any request."""
        with pytest.raises(PermanentError, match="not valid JSON"):
            await webhook().send("t", KEY, ticket={"x": object()})
        assert receiver.requests == []

    async def test_key_that_cannot_be_a_header_is_permanent(
        self, receiver: Receiver, webhook: Factory
    ):
        """A key with a line break cannot go into Idempotency-Key: refused, nothing sent."""
        with pytest.raises(PermanentError, match="idempotency key"):
            await webhook().send("t", "a\r\nX-Evil: 1")
        assert receiver.requests == []

    async def test_signs_through_any_transport(self):
        """Through httpx.MockTransport: the query is kept and the signature matches the body."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, text="ok")

        sender = WebhookSender(
            WebhookSettings(url="https://siem.example/in?tenant=acme", secret=SECRET),
            transport=httpx.MockTransport(handler),
        )
        try:
            await sender.send("t", KEY)
        finally:
            await sender.aclose()
        (req,) = seen
        assert str(req.url) == "https://siem.example/in?tenant=acme"
        assert req.headers[SIGNATURE_HEADER] == sign_body(SECRET, req.content)
