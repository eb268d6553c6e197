"""EmailSender against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest
import structlog
from pydantic import ValidationError

from ticketbridge.errors import AuthFailedError, PermanentError, TransientError
from ticketbridge.notify import EmailSender, Notification, SmtpSettings, message_id_for
from ticketbridge.notify.email import split_addresses

from .conftest import PASSWORD, USER, SmtpServer

pytestmark = pytest.mark.anyio

KEY = "0123456789abcdef"


def text_of(msg: EmailMessage) -> str:
    """The decoded text body, with the wire's CRLF line ends as LF."""
    content = msg.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def sender_for(server: SmtpServer, **overrides: object) -> EmailSender:
    return EmailSender(SmtpSettings.model_validate(server.settings(**overrides)))


class TestSmtpSettings:
    def test_defaults_are_submission_with_starttls(self):
        """Only host and from_address are required; the defaults are port 587 with STARTTLS."""
        s = SmtpSettings(host="smtp.msp.example", from_address="alerts@msp.example")
        assert (s.port, s.starttls, s.ssl, s.timeout) == (587, True, False, 30.0)
        assert s.sender.addr_spec == "alerts@msp.example"

    def test_timeout_accepts_durations(self):
        """The timeout reads like every other duration of the configuration."""
        s = SmtpSettings(host="h", from_address="a@b.example", timeout="2m")
        assert s.timeout == 120.0

    def test_starttls_and_ssl_exclude_each_other(self):
        """Implicit TLS and STARTTLS cannot both be asked for."""
        with pytest.raises(ValidationError, match="either starttls"):
            SmtpSettings(host="h", from_address="a@b.example", starttls=True, ssl=True)

    def test_username_needs_password(self):
        """A username without a password (or the reverse) is a configuration error."""
        with pytest.raises(ValidationError, match="username and password go together"):
            SmtpSettings(host="h", from_address="a@b.example", username="u")

    @pytest.mark.parametrize("bad", ["not-an-address", "a@b.example, c@d.example", "x\n@y.z", ""])
    def test_from_address_must_be_one_mailbox(self, bad: str):
        """from_address is exactly one mailbox."""
        with pytest.raises(ValidationError):
            SmtpSettings(host="h", from_address=bad)

    def test_unknown_fields_are_refused(self):
        """extra="forbid": a misspelt setting is an error, not silently ignored."""
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            SmtpSettings(host="h", from_address="a@b.example", start_tls=True)

    def test_password_is_not_in_repr(self):
        """The password stays a SecretStr: printing the settings does not show it."""
        s = SmtpSettings(host="h", from_address="a@b.example", username=USER, password=PASSWORD)
        assert PASSWORD not in repr(s)
        assert PASSWORD not in str(s.model_dump())


class TestMessageIdFor:
    def test_is_deterministic_and_uses_the_from_domain(self):
        """The same key and domain always give the same Message-ID."""
        assert message_id_for(KEY, "msp.example") == f"<{KEY}@ticketbridge.msp.example>"
        assert message_id_for(KEY, "MSP.example") == message_id_for(KEY, "msp.example")

    def test_key_that_is_not_an_id_left_is_hashed(self):
        """A key with characters a Message-ID cannot carry becomes a stable digest."""
        first = message_id_for("rule 7/ticket <42>", "msp.example")
        assert first == message_id_for("rule 7/ticket <42>", "msp.example")
        left = first[1:].split("@", 1)[0]
        assert len(left) == 32
        assert all(c in "0123456789abcdef" for c in left)

    def test_international_domain_is_punycoded(self):
        """The right-hand side is ASCII even for an internationalised from domain."""
        assert (
            message_id_for(KEY, "bücher.example") == f"<{KEY}@ticketbridge.xn--bcher-kva.example>"
        )


class TestSplitAddresses:
    def test_commas_inside_quoted_names_do_not_split(self):
        """A quoted display name may contain a comma; empty parts are dropped."""
        assert split_addresses('a@x.example,, "Lee, Dana" <d@x.example>') == [
            "a@x.example",
            '"Lee, Dana" <d@x.example>',
        ]

    def test_unparsable_value_is_kept_for_the_sender_to_refuse(self):
        """Garbage is passed on (and refused when sending), never silently dropped."""
        assert split_addresses("nobody") == ["nobody"]
        assert split_addresses("   ") == []


class TestBuildMessage:
    @pytest.fixture
    def sender(self) -> EmailSender:
        return EmailSender(SmtpSettings(host="h", from_address="Service Desk <alerts@msp.example>"))

    def test_headers(self, sender: EmailSender):
        """The message carries the key-derived Message-ID, RFC 3834 and the key header."""
        msg = sender.build_message(["ops@client.example"], "P1 breach", "Body.", KEY)
        assert msg["Message-ID"] == f"<{KEY}@ticketbridge.msp.example>"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["X-Auto-Response-Suppress"] == "OOF, AutoReply"
        assert msg["X-Ticketbridge-Key"] == KEY
        assert msg["From"] == "Service Desk <alerts@msp.example>"
        assert msg["To"] == "ops@client.example"
        assert msg["Date"]

    def test_subject_line_breaks_are_folded_away(self, sender: EmailSender):
        """A ticket title with line breaks cannot inject headers: it becomes one line."""
        msg = sender.build_message(["a@b.example"], "Down\r\nBcc: evil@x.example", "b", KEY)
        assert msg["Subject"] == "Down Bcc: evil@x.example"
        assert msg["Bcc"] is None

    @pytest.mark.parametrize(
        "to", [[], ["nobody"], ["a@b.example\r\nBcc: x@y.example"], ["a@b.example, c@d.example"]]
    )
    def test_bad_recipients_are_permanent(self, sender: EmailSender, to: list[str]):
        """Missing or malformed recipients fail before any connection, for good."""
        with pytest.raises(PermanentError):
            sender.build_message(to, "s", "b", KEY)

    def test_recipients_as_a_string_are_refused(self, sender: EmailSender):
        """A bare string is not taken for a list of one-letter recipients."""
        with pytest.raises(PermanentError, match="list of addresses"):
            sender.build_message("ops@client.example", "s", "b", KEY)  # type: ignore[arg-type]

    @pytest.mark.parametrize("key", ["", "with space", "line\nbreak", "ü", "k" * 201])
    def test_bad_keys_are_permanent(self, sender: EmailSender, key: str):
        """The key must travel in a header: visible ASCII, 1 to 200 characters."""
        with pytest.raises(PermanentError, match="idempotency key"):
            sender.build_message(["a@b.example"], "s", "b", key)


class TestEmailSenderDelivery:
    async def test_delivers_with_headers_and_body(self, smtp_server: SmtpServer):
        """The server receives one message with the envelope, headers and body we set."""
        sender = sender_for(smtp_server)
        message_id = await sender.send(
            ["ops@client.example", "Duty Manager <duty@msp.example>"],
            "Escalation: ticket 4711 breached P1",
            "Ticket 4711 has had no vendor update for 2 hours.\nSee the PSA.",
            KEY,
        )
        assert message_id == f"<{KEY}@ticketbridge.msp.example>"
        (got,) = smtp_server.handler.messages
        assert got.mail_from == "alerts@msp.example"
        assert got.rcpt_tos == ["ops@client.example", "duty@msp.example"]
        msg = got.message
        assert msg["Message-ID"] == message_id
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["X-Ticketbridge-Key"] == KEY
        assert msg["From"] == "Service Desk <alerts@msp.example>"
        assert msg["To"] == "ops@client.example, Duty Manager <duty@msp.example>"
        assert msg["Subject"] == "Escalation: ticket 4711 breached P1"
        assert msg.get_content_type() == "text/plain"
        assert text_of(msg) == "Ticket 4711 has had no vendor update for 2 hours.\nSee the PSA.\n"
        assert got.authenticated is False

    async def test_non_ascii_subject_and_body_survive(self, smtp_server: SmtpServer):
        """Accents and symbols arrive intact (RFC 2047 subject, quoted-printable body)."""
        await sender_for(smtp_server).send(
            ["ops@client.example"], "Störung: Ticket 12 €", "Grüße aus Zürich ✓", KEY
        )
        msg = smtp_server.handler.messages[0].message
        assert msg["Subject"] == "Störung: Ticket 12 €"
        assert msg["Content-Transfer-Encoding"] == "quoted-printable"
        assert text_of(msg) == "Grüße aus Zürich ✓\n"
        assert smtp_server.handler.messages[0].raw.isascii()

    async def test_resend_with_same_key_has_same_message_id(self, smtp_server: SmtpServer):
        """A retried send is recognisable: both copies carry the same Message-ID."""
        sender = sender_for(smtp_server)
        first = await sender.send(["a@client.example"], "s", "b", KEY)
        second = await sender.send(["a@client.example"], "s", "b", KEY)
        other = await sender.send(["a@client.example"], "s", "b", "fedcba9876543210")
        ids = [m.message["Message-ID"] for m in smtp_server.handler.messages]
        assert ids == [first, first, other]
        assert first == second != other

    async def test_authenticates_when_configured(self, smtp_server: SmtpServer):
        """With username and password the sender logs in before sending."""
        sender = sender_for(smtp_server, username=USER, password=PASSWORD)
        await sender.send(["a@client.example"], "s", "b", KEY)
        assert smtp_server.handler.messages[0].authenticated is True

    async def test_partly_refused_recipients_still_deliver(self, smtp_server: SmtpServer):
        """One refused recipient does not stop the others; the refusal is logged."""
        smtp_server.handler.rcpt_replies["gone@client.example"] = "550 5.1.1 no such user"
        with structlog.testing.capture_logs() as logs:
            message_id = await sender_for(smtp_server).send(
                ["ops@client.example", "gone@client.example"], "s", "b", KEY
            )
        assert smtp_server.handler.messages[0].rcpt_tos == ["ops@client.example"]
        (warning,) = [e for e in logs if e["event"] == "email_recipients_refused"]
        assert warning["message_id"] == message_id
        assert warning["refused"] == {"gone@client.example": "550 5.1.1 no such user"}
        assert warning["delivered"] == 1

    async def test_deliver_splits_target_addresses(self, smtp_server: SmtpServer):
        """deliver() sends a Notification to each address of its comma-separated target."""
        n = Notification(
            channel="email",
            target='ops@client.example, "Lee, Dana" <duty@msp.example>',
            subject="Subject",
            text="Text",
            key=KEY,
        )
        assert await sender_for(smtp_server).deliver(n) == f"<{KEY}@ticketbridge.msp.example>"
        got = smtp_server.handler.messages[0]
        assert got.rcpt_tos == ["ops@client.example", "duty@msp.example"]
        assert got.message["To"] == 'ops@client.example, "Lee, Dana" <duty@msp.example>'
        assert got.message["Subject"] == "Subject"


class TestEmailSenderFailures:
    async def test_451_at_rcpt_is_transient_and_certain(self, smtp_server: SmtpServer):
        """'451 try later' for the only recipient: retry later; nothing was delivered."""
        smtp_server.handler.rcpt_replies["ops@client.example"] = "451 4.3.0 try later"
        with pytest.raises(TransientError) as info:
            await sender_for(smtp_server).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.status == 451
        assert info.value.uncertain is False
        assert "try later" in str(info.value)
        assert smtp_server.handler.messages == []

    async def test_550_at_rcpt_is_permanent(self, smtp_server: SmtpServer):
        """'550 no such user' for every recipient: retrying will not help."""
        smtp_server.handler.rcpt_replies["ops@client.example"] = "550 5.1.1 no such user"
        with pytest.raises(PermanentError) as info:
            await sender_for(smtp_server).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.status == 550
        assert "no such user" in str(info.value)
        assert not isinstance(info.value, AuthFailedError)

    async def test_mixed_refusals_are_transient(self, smtp_server: SmtpServer):
        """All recipients refused, one of them only for now: the whole send is retried later."""
        smtp_server.handler.rcpt_replies.update(
            {"a@client.example": "550 5.1.1 no such user", "b@client.example": "452 4.2.2 full"}
        )
        with pytest.raises(TransientError) as info:
            await sender_for(smtp_server).send(
                ["a@client.example", "b@client.example"], "s", "b", KEY
            )
        assert info.value.uncertain is False
        assert "a@client.example: 550" in str(info.value)
        assert "b@client.example: 452" in str(info.value)

    async def test_553_at_mail_from_is_permanent(self, smtp_server: SmtpServer):
        """The relay refusing our sender address is a configuration problem."""
        smtp_server.handler.mail_reply = "553 5.7.1 sender not allowed"
        with pytest.raises(PermanentError, match="sender refused: 553") as info:
            await sender_for(smtp_server).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.status == 553

    async def test_451_after_data_is_transient_and_certain(self, smtp_server: SmtpServer):
        """A 4xx answer to the message itself: it was not accepted, so retrying is safe."""
        smtp_server.handler.data_reply = "451 4.7.1 greylisted, try again in 5 minutes"
        with pytest.raises(TransientError, match="message refused: 451") as info:
            await sender_for(smtp_server).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.status == 451
        assert info.value.uncertain is False

    async def test_554_after_data_is_permanent(self, smtp_server: SmtpServer):
        """A 5xx answer to the message (e.g. content rejected) is permanent."""
        smtp_server.handler.data_reply = "554 5.6.0 message content rejected"
        with pytest.raises(PermanentError, match="message refused: 554") as info:
            await sender_for(smtp_server).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.status == 554

    async def test_timeout_after_data_is_uncertain(self, smtp_server: SmtpServer):
        """No answer after the message was sent: it may have been accepted."""
        smtp_server.handler.data_delay = 2.0
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out after DATA") as info:
            await sender_for(smtp_server, timeout=0.3).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.uncertain is True
        assert smtp_server.handler.data_commands == 1
        assert time.monotonic() - started < 1.5

    async def test_connection_refused_is_transient_and_certain(self, closed_port: int):
        """Nobody listening: retry later, nothing can have been sent."""
        settings = SmtpSettings(
            host="127.0.0.1", port=closed_port, starttls=False, from_address="a@msp.example"
        )
        with pytest.raises(TransientError, match="cannot connect") as info:
            await EmailSender(settings).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.uncertain is False

    async def test_greeting_timeout_is_transient_and_certain(self, silent_port: int):
        """A server that never greets times out before anything was sent."""
        settings = SmtpSettings(
            host="127.0.0.1",
            port=silent_port,
            starttls=False,
            from_address="a@msp.example",
            timeout=0.3,
            local_hostname="tb.test",
        )
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out") as info:
            await EmailSender(settings).send(["ops@client.example"], "s", "b", KEY)
        assert info.value.uncertain is False
        assert time.monotonic() - started < 1.5

    async def test_wrong_password_is_auth_failed_without_the_password(
        self, smtp_server: SmtpServer
    ):
        """Refused credentials raise AuthFailedError; the password is nowhere in it."""
        wrong = "Wr0ng-Passw0rd-123"
        sender = sender_for(smtp_server, username=USER, password=wrong)
        with pytest.raises(AuthFailedError) as info:
            await sender.send(["ops@client.example"], "s", "b", KEY)
        assert info.value.status == 535
        text = f"{info.value} {info.value!r} {info.value.args}"
        assert wrong not in text
        assert PASSWORD not in text
        assert info.value.__cause__ is None
        assert smtp_server.handler.messages == []

    async def test_starttls_not_offered_is_permanent(self, plain_smtp_server: SmtpServer):
        """starttls: true against a server without STARTTLS fails for good, sending nothing."""
        sender = sender_for(plain_smtp_server, starttls=True)
        with pytest.raises(PermanentError, match="STARTTLS"):
            await sender.send(["ops@client.example"], "s", "b", KEY)
        assert plain_smtp_server.handler.messages == []

    async def test_auth_not_offered_is_permanent(self, plain_smtp_server: SmtpServer):
        """Credentials configured but the server offers no AUTH: a configuration error."""
        sender = sender_for(plain_smtp_server, username=USER, password=PASSWORD)
        with pytest.raises(PermanentError, match="AUTH") as info:
            await sender.send(["ops@client.example"], "s", "b", KEY)
        assert PASSWORD not in str(info.value)
        assert plain_smtp_server.handler.messages == []
