"""The e-mail vendor's parsing: raw messages as mail clients and servers write them."""

from __future__ import annotations

import base64
import re
import tracemalloc
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketbridge.adapters.email.parse import (
    MailKind,
    ParsedMail,
    html_to_text,
    parse_message,
    says_resolved,
)

CASE = re.compile(r"\b(?P<case>CS\d{7})\b")
TAG = re.compile(r"\[TB-(\d+)\]")
OWN_DOMAIN = "tb.msp.example"
WHEN = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)


def build(
    body: str | None = "Hello",
    *,
    subject: str = "Re: [TB-42] Line down at Smith & Co",
    sender: str = "John Smith <John.Smith@Vendor.example>",
    html: str | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = "<reply-1@mail.vendor.example>",
) -> bytes:
    """A message the way a mail client writes it (plain, HTML, or both as alternatives)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Support Desk <support@msp.example>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(WHEN)
    if message_id is not None:
        msg["Message-ID"] = message_id
    msg["In-Reply-To"] = "<tb-42-3@tb.msp.example>"
    msg["References"] = "<tb-42-1@tb.msp.example> <tb-42-3@tb.msp.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    if body is not None:
        msg.set_content(body)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def parse(raw: bytes, **kwargs: object) -> ParsedMail:
    kwargs.setdefault("case_pattern", CASE)
    kwargs.setdefault("tag_pattern", TAG)
    kwargs.setdefault("own_id_domain", OWN_DOMAIN)
    return parse_message(raw, **kwargs)  # type: ignore[arg-type]


class TestHeaders:
    def test_threading_headers_addresses_and_date(self) -> None:
        """Ids, addresses (lower-cased), display name and an aware UTC date are read."""
        raw = build(headers={"Cc": "Ops <OPS@vendor.example>, noc@vendor.example"})
        mail = parse(raw)
        assert "<reply-1@mail.vendor.example>" == mail.message_id
        assert not mail.message_id_synthetic
        assert "<tb-42-3@tb.msp.example>" == mail.in_reply_to
        assert ("<tb-42-1@tb.msp.example>", "<tb-42-3@tb.msp.example>") == mail.references
        assert "john.smith@vendor.example" == mail.from_addr
        assert "John Smith" == mail.from_name
        assert ("support@msp.example",) == mail.to
        assert ("ops@vendor.example", "noc@vendor.example") == mail.cc
        assert WHEN == mail.date
        assert mail.date is not None
        assert mail.date.utcoffset() is not None
        assert "Re: [TB-42] Line down at Smith & Co" == mail.subject
        assert "<reply-1@mail.vendor.example>" == mail.headers["message-id"]
        assert () == mail.problems

    def test_date_in_another_zone_is_converted_to_utc(self) -> None:
        raw = build().replace(format_datetime(WHEN).encode(), b"Tue, 01 Dec 2026 11:15:00 +0100")
        assert WHEN == parse(raw).date

    def test_unparseable_date_is_none_and_noted(self) -> None:
        raw = build().replace(format_datetime(WHEN).encode(), b"yesterday-ish")
        mail = parse(raw)
        assert mail.date is None
        assert any("Date" in p for p in mail.problems)

    def test_rfc2047_subject_is_decoded_and_collapsed(self) -> None:
        raw = build(subject="placeholder").replace(
            b"Subject: placeholder",
            b"Subject: =?UTF-8?B?UmU6IFtUQi00Ml0gU3TDtnJ1bmc=?=\r\n"
            b" =?ISO-8859-1?Q?_M=FCnchen?=   Leitung",
        )
        raw = raw.replace(
            b"From: John Smith <John.Smith@Vendor.example>",
            b"From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <jm@vendor.example>",
        )
        mail = parse(raw)
        assert "Re: [TB-42] Störung München Leitung" == mail.subject
        assert "42" == mail.tag
        assert ("Jürgen Müller", "jm@vendor.example") == (mail.from_name, mail.from_addr)

    def test_missing_message_id_gets_a_stable_synthetic_one(self) -> None:
        """Same raw bytes, same id: a re-read of the mailbox threads the mail the same way."""
        raw = build(message_id=None)
        first, second = parse(raw), parse(raw)
        assert first.message_id_synthetic
        assert re.fullmatch(r"<[0-9a-f]{64}@missing\.invalid>", first.message_id)
        assert first.message_id == second.message_id
        assert "no Message-ID" in first.problems
        other = parse(build("Another body", message_id=None))
        assert first.message_id != other.message_id

    def test_message_id_without_angle_brackets_is_normalised(self) -> None:
        raw = build(message_id="bare-id@vendor.example")
        mail = parse(raw)
        assert "<bare-id@vendor.example>" == mail.message_id
        assert not mail.message_id_synthetic

    def test_unparseable_from_gives_empty_address(self) -> None:
        raw = build().replace(
            b"From: John Smith <John.Smith@Vendor.example>", b"From: ;;;not an address"
        )
        mail = parse(raw)
        assert "" == mail.from_addr


class TestReplyStripping:
    def test_gmail_reply_keeps_only_new_words(self) -> None:
        body = (
            "Thanks, we rebooted the router.\nIt is back up now.\n\n"
            "On Tue, Dec 1, 2026 at 10:15 AM Jane Doe <jane@msp.example> wrote:\n"
            "> Hello,\n> the line at Smith & Co is down.\n"
        )
        html = (
            '<div dir="ltr">Thanks, we rebooted the router.<br>It is back up now.</div><br>'
            '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, Dec 1, 2026 '
            "at 10:15 AM Jane Doe &lt;jane@msp.example&gt; wrote:<br></div>"
            '<blockquote class="gmail_quote">Hello,<br>the line at Smith &amp; Co is down.'
            "</blockquote></div>"
        )
        mail = parse(build(body, html=html))
        assert "Thanks, we rebooted the router.\nIt is back up now." == mail.text
        assert "the line at Smith & Co is down." in mail.full_text

    def test_gmail_html_only_reply(self) -> None:
        html = (
            '<div dir="ltr">Rebooted, please test.</div><br><div class="gmail_quote">'
            '<div class="gmail_attr">On Tue, Dec 1, 2026 at 10:15 AM Jane Doe '
            "&lt;jane@msp.example&gt; wrote:<br></div><blockquote>Hello</blockquote></div>"
        )
        mail = parse(build(None, html=html))
        assert "Rebooted, please test." == mail.text

    def test_outlook_html_with_from_sent_block(self) -> None:
        html = (
            '<html><head><style>p.MsoNormal{margin:0}</style></head><body><div class="Word'
            'Section1"><p class="MsoNormal">We are looking into the fault on our side.</p>'
            '<p class="MsoNormal">&nbsp;</p><p class="MsoNormal">Kind regards,</p>'
            '<p class="MsoNormal">John Smith | Vendor Support</p>'
            '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
            '<p class="MsoNormal"><b>From:</b> Jane Doe &lt;jane@msp.example&gt;<br>'
            "<b>Sent:</b> Tuesday, December 1, 2026 10:15 AM<br>"
            "<b>To:</b> support@vendor.example<br>"
            "<b>Subject:</b> [TB-42] Line down</p></div>"
            '<p class="MsoNormal">Hello, the line is down.</p></div></body></html>'
        )
        mail = parse(build(None, html=html))
        assert "We are looking into the fault on our side." == mail.text
        assert "Hello, the line is down." in mail.full_text
        assert "p.MsoNormal" not in mail.full_text

    def test_outlook_plain_original_message_separator(self) -> None:
        body = (
            "Fixed on our side, please confirm.\n\n-----Original Message-----\n"
            "From: Jane Doe\nSent: Tuesday, December 1, 2026 10:15 AM\nTo: support\n"
            "Subject: [TB-42] Line down\n\nHello\n"
        )
        assert "Fixed on our side, please confirm." == parse(build(body)).text

    def test_apple_mail_reply(self) -> None:
        html = (
            '<html><body dir="auto">Done on our side.<br><br><div dir="ltr">'
            '<blockquote type="cite">On 1 Dec 2026, at 10:15, Jane Doe &lt;jane@msp.example'
            '&gt; wrote:<br><br></blockquote></div><blockquote type="cite"><div dir="ltr">'
            "Hello, the line is down.</div></blockquote></body></html>"
        )
        body = (
            "Done on our side.\n\n> On 1 Dec 2026, at 10:15, Jane Doe <jane@msp.example> wrote:"
            "\n> \n> Hello, the line is down.\n"
        )
        assert "Done on our side." == parse(build(body, html=html)).text
        assert "Done on our side." == parse(build(None, html=html)).text

    def test_inline_quoting_keeps_the_unquoted_answers(self) -> None:
        body = "> Is the line down?\nYes, since 9am.\n> Any alarms?\nLOS on port 3.\n"
        assert "Yes, since 9am.\nLOS on port 3." == parse(build(body)).text

    def test_bottom_posting_keeps_the_words_below_the_quote(self) -> None:
        body = (
            "On Tue, Dec 1, 2026 at 10:15 AM Jane Doe <jane@msp.example> wrote:\n"
            "> Hello,\n> is the line down?\n\nYes, replaced the card.\n"
        )
        assert "Yes, replaced the card." == parse(build(body)).text

    @pytest.mark.parametrize(
        ("header", "words"),
        [
            ("Am 01.12.2026 um 10:15 schrieb Jane Doe <jane@msp.example>:", "Wir prüfen das."),
            ("Le mar. 1 déc. 2026 à 10:15, Jane Doe <jane@msp.example> a écrit :", "On vérifie."),
            ("Op di 1 dec. 2026 om 10:15 schreef Jane Doe <jane@msp.example>:", "We kijken."),
            ("El mar, 1 dic 2026 a las 10:15, Jane Doe (<jane@msp.example>) escribió:", "Vale."),
            ("On Tue, Dec 1, 2026 at 10:15 AM Jane Doe <jane@msp.example>\nwrote:", "Done."),
        ],
    )
    def test_reply_headers_in_other_languages_and_wrapped(self, header: str, words: str) -> None:
        body = f"{words}\n\n{header}\n> Hallo / Bonjour / Hello\n> old words\n"
        assert words == parse(build(body)).text

    @pytest.mark.parametrize(
        "block",
        [
            (
                "Von: Jane Doe <jane@msp.example>\nGesendet: Dienstag, 1. Dezember 2026 10:15\n"
                "An: support@vendor.example\nBetreff: [TB-42] Störung"
            ),
            (
                "De : Jane Doe <jane@msp.example>\nEnvoyé : mardi 1 décembre 2026 10:15\n"
                "À : support@vendor.example\nObjet : [TB-42] Panne"
            ),
            (
                "---------- Forwarded message ---------\nFrom: Jane <jane@msp.example>\n"
                "Date: Tue, Dec 1, 2026\nSubject: [TB-42] Line down"
            ),
        ],
    )
    def test_outlook_blocks_in_other_languages_and_forwards(self, block: str) -> None:
        body = f"Checked on our side.\n\n{block}\n\nOld words from earlier.\n"
        mail = parse(build(body))
        assert "Checked on our side." == mail.text
        assert "Old words from earlier." in mail.full_text

    def test_date_and_to_lines_in_the_vendors_words_are_kept(self) -> None:
        """Field-like lines without a sender line are not a reply header."""
        body = (
            "Maintenance window:\nDate: 2026-12-03 22:00\nTo: 2026-12-04 02:00\nPlease confirm.\n"
        )
        assert body.strip() == parse(build(body)).text

    def test_top_posting_over_unmarked_history(self) -> None:
        body = (
            "New words here.\n\n________________________________\n"
            "From: Jane Doe <jane@msp.example>\nSent: Tuesday, December 1, 2026 10:15\n"
            "To: support@vendor.example\nSubject: [TB-42] Line down\n\nOld words.\n"
        )
        assert "New words here." == parse(build(body)).text

    def test_dash_dash_signature_is_stripped(self) -> None:
        body = "Please send the interface logs.\n\n-- \nJohn Smith\nVendor Support\n+1 555 0100\n"
        mail = parse(build(body))
        assert "Please send the interface logs." == mail.text
        assert "+1 555 0100" in mail.full_text

    def test_sign_off_block_and_phone_footer_are_stripped(self) -> None:
        body = (
            "The circuit is restored.\n\nBest regards,\nJohn Smith\nVendor Support\n\n"
            "Sent from my iPhone\n"
        )
        assert "The circuit is restored." == parse(build(body)).text

    def test_thanks_opening_a_sentence_is_not_a_signature(self) -> None:
        """A mid-text "Thanks, ..." sentence is words, not a sign-off."""
        body = "We replaced the card.\nThanks, the logs helped a lot.\nMonitoring now.\n"
        assert "We replaced the card.\nThanks, the logs helped a lot.\nMonitoring now." == (
            parse(build(body)).text
        )

    def test_sign_off_words_inside_a_sentence_are_kept(self) -> None:
        body = "Replaced the SFP.\nBest effort only on this circuit.\nRegards to the team\n"
        assert body.strip() == parse(build(body)).text

    def test_hyphen_lists_are_kept(self) -> None:
        body = "Steps taken:\n- rebooted the CPE\n- replaced the SFP\n\nAll green now.\n"
        assert body.strip() == parse(build(body)).text

    def test_reply_quoting_our_whole_thread_keeps_only_the_new_words(self) -> None:
        """A vendor answers above every earlier message of the thread, nested and re-quoted."""
        history = ""
        for n in range(5, 0, -1):
            history += (
                f"\n\nFrom: {'Jane Doe' if n % 2 else 'John Smith'} <x{n}@example.com>\n"
                f"Sent: Tuesday, December {n}, 2026 10:15 AM\nTo: support\n"
                f"Subject: RE: [TB-42] Line down\n\nEarlier message number {n}.\n"
                f"> On Mon, Nov 30, 2026 Jane wrote:\n> > quoted again {n}\n"
            )
        body = "The fix is deployed; please confirm on your side." + history
        mail = parse(build(body))
        assert "The fix is deployed; please confirm on your side." == mail.text
        assert "Earlier message number 1." in mail.full_text

    def test_empty_body(self) -> None:
        mail = parse(build(""))
        assert "" == mail.text
        assert "" == mail.full_text
        assert MailKind.HUMAN == mail.kind

    def test_only_a_quote_gives_no_new_words(self) -> None:
        body = "On Tue, Dec 1, 2026 at 10:15 AM Jane Doe <jane@msp.example> wrote:\n> Hello\n"
        assert "" == parse(build(body)).text


class TestHtml:
    def test_html_only_mail_is_converted(self) -> None:
        html = (
            "<html><head><style>body{color:red}</style><script>x()</script></head><body>"
            "<p>Case <b>CS0012345</b> is <i>in progress</i>.</p><ul><li>one</li><li>two</li>"
            '</ul><p>See <a href="https://portal.vendor.example/cs/1">the portal</a>.</p>'
            '<img src="cid:logo"></body></html>'
        )
        mail = parse(build(None, html=html))
        assert "Case CS0012345 is in progress." in mail.text
        assert "* one\n  * two" in mail.text or "* one\n* two" in mail.text
        assert "https://portal.vendor.example/cs/1" in mail.text
        assert "color:red" not in mail.full_text
        assert "x()" not in mail.full_text
        assert "CS0012345" == mail.case_number

    def test_html_to_text_entities_and_paragraphs(self) -> None:
        text = html_to_text("<p>A&amp;B&nbsp;&lt;ok&gt;</p><p>second</p><br><br><br><p>third</p>")
        assert "A&B <ok>\n\nsecond\n\nthird" == text

    def test_plain_alternative_is_preferred_but_an_empty_one_is_not(self) -> None:
        mail = parse(build("plain words", html="<p>html words</p>"))
        assert "plain words" == mail.text
        mail = parse(build("   \n", html="<p>html words</p>"))
        assert "html words" == mail.text


class TestKinds:
    def test_plain_human_reply(self) -> None:
        assert MailKind.HUMAN == parse(build("We are on it.")).kind

    def test_case_number_acknowledgment(self) -> None:
        """The vendor's ticketing tool acknowledges: the case number comes from the text."""
        body = (
            "Dear customer,\n\nYour case CS0012345 has been created and will be handled "
            "by our support team.\n\nVendor Support\n"
        )
        mail = parse(build(body, subject="Re: [TB-42] Line down"))
        assert "CS0012345" == mail.case_number
        assert "42" == mail.tag

    def test_case_number_in_subject_wins_over_text(self) -> None:
        mail = parse(build("See also CS0000001.", subject="[CS0012345] Update"))
        assert "CS0012345" == mail.case_number

    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            (r"CS(\d+)", "0012345"),  # group 1
            (r"CS\d+", "CS0012345"),  # whole match
            (r"(Case) (?P<case>CS\d+)", "CS0012345"),  # the named group wins
        ],
    )
    def test_case_pattern_groups(self, pattern: str, expected: str) -> None:
        mail = parse(build("Case CS0012345 opened."), case_pattern=re.compile(pattern))
        assert expected == mail.case_number

    def test_no_patterns_no_captures(self) -> None:
        mail = parse_message(build("Case CS0012345 opened."))
        assert mail.case_number is None
        assert mail.tag is None

    def test_rfc3834_auto_reply(self) -> None:
        raw = build(
            "We received your message and will answer within 4 hours.",
            subject="Re: [TB-42] Line down",
            headers={"Auto-Submitted": "auto-replied"},
        )
        assert MailKind.AUTO_REPLY == parse(raw).kind

    @pytest.mark.parametrize(
        "header",
        [
            ("Auto-Submitted", "auto-generated"),
            ("Precedence", "bulk"),
            ("Precedence", "auto_reply"),
            ("X-Autoreply", "yes"),
            ("Return-Path", "<>"),
        ],
    )
    def test_automatic_mail_headers(self, header: tuple[str, str]) -> None:
        raw = build("Ticket updated.", subject="Ticket update", headers=dict([header]))
        assert MailKind.AUTO_REPLY == parse(raw).kind

    def test_auto_submitted_no_is_human(self) -> None:
        raw = build("Hello", headers={"Auto-Submitted": "no"})
        assert MailKind.HUMAN == parse(raw).kind

    def test_exchange_out_of_office(self) -> None:
        raw = build(
            None,
            html="<p>I am out of the office until 7 December with no access to e-mail.</p>",
            subject="Automatic reply: [TB-42] Line down",
            headers={"X-Auto-Response-Suppress": "All", "Auto-Submitted": "auto-generated"},
        )
        assert MailKind.OUT_OF_OFFICE == parse(raw).kind

    def test_vacation_responder_by_headers_and_body(self) -> None:
        raw = build(
            "Hi, I am on vacation until Monday. For urgent issues call the hotline.",
            subject="Re: [TB-42] Line down",
            headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
        )
        assert MailKind.OUT_OF_OFFICE == parse(raw).kind

    def test_german_out_of_office_subject(self) -> None:
        raw = build("Ich bin abwesend.", subject="Abwesenheitsnotiz: [TB-42] Störung")
        assert MailKind.OUT_OF_OFFICE == parse(raw).kind

    def test_human_subject_starting_like_a_vacation_word(self) -> None:
        raw = build("We see LOS on the far end.", subject="Absence of light on port 3")
        assert MailKind.HUMAN == parse(raw).kind

    def test_read_receipt_report_is_automatic(self) -> None:
        raw = (
            b"From: john@vendor.example\r\nMessage-ID: <mdn@vendor.example>\r\n"
            b"Subject: Read: [TB-42] Line down\r\nMIME-Version: 1.0\r\nContent-Type: "
            b'multipart/report; report-type=disposition-notification; boundary="R"\r\n\r\n'
            b"--R\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
            b"--R\r\nContent-Type: message/disposition-notification\r\n\r\n"
            b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--R--\r\n"
        )
        assert MailKind.AUTO_REPLY == parse(raw).kind

    def test_dsn_bounce(self) -> None:
        raw = (
            b"Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.msp.example>\r\n"
            b"To: support@msp.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            b"Date: Tue, 01 Dec 2026 10:15:00 +0000\r\nMessage-ID: <dsn-1@mx.msp.example>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
            b' boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n'
            b"Your message could not be delivered to support@vendor.example.\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.msp.example\r\n\r\nFinal-Recipient: rfc822; "
            b"support@vendor.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
            b"--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: support@msp.example\r\n"
            b"Message-ID: <tb-42-3@tb.msp.example>\r\nX-Ticketbridge-Key: 42\r\n"
            b"Subject: [TB-42] Line down\r\n\r\nHello\r\n--B--\r\n"
        )
        mail = parse(raw)
        assert MailKind.BOUNCE == mail.kind
        assert "could not be delivered" in mail.text
        assert [a.content_type for a in mail.attachments] == [
            "message/delivery-status",
            "message/rfc822",
        ]
        returned = mail.attachments[1].data
        assert returned is not None
        assert b"<tb-42-3@tb.msp.example>" in returned

    def test_mailer_daemon_without_report_is_a_bounce(self) -> None:
        raw = build(
            "Delivery to the following recipient failed permanently.",
            sender="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            subject="Delivery Status Notification (Failure)",
        )
        assert MailKind.BOUNCE == parse(raw).kind

    def test_own_mail_coming_back_by_key_header(self) -> None:
        raw = build(
            "Hello vendor",
            sender="Support <support@msp.example>",
            headers={"X-Ticketbridge-Key": "link-42", "Auto-Submitted": "auto-generated"},
        )
        mail = parse(raw)
        assert MailKind.OWN == mail.kind
        assert "link-42" == mail.headers["x-ticketbridge-key"]

    def test_own_mail_coming_back_by_message_id_domain(self) -> None:
        raw = build("Hello vendor", message_id="<tb-42-9@TB.msp.example>")
        assert MailKind.OWN == parse(raw).kind
        assert MailKind.HUMAN == parse(raw, own_id_domain=None).kind


class TestBadInput:
    def test_empty_input_raises_value_error(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            parse_message(b"")

    def test_multipart_without_boundary(self) -> None:
        raw = (
            b"From: a@vendor.example\r\nSubject: broken\r\nMessage-ID: <b1@vendor.example>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
            b"Some words the vendor wrote.\r\n"
        )
        mail = parse(raw)
        assert "Some words the vendor wrote." in mail.full_text
        assert any(p.startswith("broken MIME structure") for p in mail.problems)

    def test_truncated_multipart(self) -> None:
        raw = build("The words before the cut.", html="<p>The words before the cut.</p>").replace(
            b"\r\n", b"\n"
        )
        cut = raw[: raw.rindex(b"Content-Type: text/html")]
        mail = parse(cut)
        assert "The words before the cut." == mail.text
        assert any("not closed" in p for p in mail.problems)

    def test_unknown_charset(self) -> None:
        raw = (
            b"From: a@vendor.example\r\nSubject: =?x-klingon?Q?Hallo?=\r\n"
            b"Message-ID: <c1@vendor.example>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=x-klingon\r\nContent-Transfer-Encoding: 8bit"
            b"\r\n\r\nCaf\xc3\xa9 ready, bad byte \xff here.\r\n"
        )
        mail = parse(raw)
        assert "Café ready, bad byte \ufffd here." == mail.text
        assert "unknown charset x-klingon (decoded as UTF-8 with replacement)" in mail.problems

    def test_wrong_charset_declared(self) -> None:
        raw = (
            b"From: a@vendor.example\r\nMessage-ID: <c2@vendor.example>\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nna\xefve\r\n"
        )
        mail = parse(raw)
        assert "na\ufffdve" == mail.text
        assert any("not valid utf-8" in p for p in mail.problems)

    def test_no_headers_at_all(self) -> None:
        mail = parse(b"just some words with no headers")
        assert mail.message_id_synthetic
        assert "" == mail.from_addr
        assert "just some words with no headers" in mail.full_text

    def test_attachments_kept_under_the_cap(self) -> None:
        msg = EmailMessage()
        msg["From"] = "a@vendor.example"
        msg["Message-ID"] = "<att@vendor.example>"
        msg.set_content("Logs attached.")
        msg.add_attachment(
            b"\x00\x01log", maintype="application", subtype="gzip", filename="trace.log.gz"
        )
        mail = parse(msg.as_bytes())
        assert "Logs attached." == mail.text
        assert 1 == len(mail.attachments)
        (att,) = mail.attachments
        assert ("trace.log.gz", "application/gzip", 5, b"\x00\x01log") == (
            att.filename,
            att.content_type,
            att.size,
            att.data,
        )
        assert () == mail.oversized

    def test_attachment_over_the_cap_is_kept_out(self) -> None:
        """A 25 MB attachment over a 10 MB cap: listed, noted, never decoded nor kept."""
        size = 25 * 1024 * 1024
        encoded = base64.encodebytes(b"\x00" * size)  # 76-column lines, as mailers send
        head = (
            b"From: a@vendor.example\r\nMessage-ID: <big@vendor.example>\r\nMIME-Version: 1.0"
            b'\r\nContent-Type: multipart/mixed; boundary="X"\r\n\r\n--X\r\n'
            b"Content-Type: text/plain\r\n\r\nThe capture is attached.\r\n--X\r\n"
            b'Content-Type: application/zip; name="report.zip"\r\n'
            b'Content-Disposition: attachment; filename="report.zip"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        raw = head + encoded + b"--X\r\nContent-Type: text/csv\r\n"
        raw += b'Content-Disposition: attachment; filename="small.csv"\r\n\r\na,b\r\n--X--\r\n'
        del encoded
        tracemalloc.start()
        try:
            mail = parse(raw)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "The capture is attached." == mail.text
        (big,) = mail.oversized
        assert ("report.zip", "application/zip", size, None) == (
            big.filename,
            big.content_type,
            big.size,
            big.data,
        )
        assert ["small.csv"] == [a.filename for a in mail.attachments]
        assert "attachment report.zip (25.0 MB) over the 10 MB cap" in mail.problems
        # The parser holds the encoded lines and their join (the stdlib's one-shot parser peaks
        # near 8x); the attachment is never decoded.
        assert peak < 3 * len(raw), f"peak {peak / 1e6:.0f} MB for {len(raw) / 1e6:.0f} MB"


class TestSaysResolved:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("The issue is RESOLVED.", True),
            ("the fault has\n   been   fixed, closing", True),
            ("This is still unresolved.", False),
            ("Nothing yet.", False),
        ],
    )
    def test_phrases(self, text: str, expected: bool) -> None:
        assert expected == says_resolved(text, ("resolved", "has been fixed", "  "))

    def test_no_phrases(self) -> None:
        assert not says_resolved("resolved", ())


_SEEDS = (
    build("Hi,\n\nOn Tue Jane wrote:\n> a\n", html="<p>Hi</p><blockquote>a</blockquote>"),
    build(None, html="<div>Case CS0012345</div>", subject="=?utf-8?q?Caf=C3=A9?="),
)


def _damaged(seed: bytes, cuts: list[tuple[float, bytes]]) -> bytes:
    """A realistic message with bytes spliced in or cut out at a few places."""
    raw = seed
    for where, junk in cuts:
        at = int(where * len(raw))
        raw = raw[:at] + junk + raw[at + len(junk) // 2 :]
    return raw


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.binary(min_size=1, max_size=2000),
        st.builds(
            lambda head, body: head + b"\r\n\r\n" + body,
            st.sampled_from(
                [
                    b"Content-Type: multipart/mixed; boundary=zz",
                    b"Content-Type: text/html; charset=x-nope",
                    b"Subject: =?utf-8?b?@@@?=\r\nFrom: <<<@>>>",
                    b"Content-Type: multipart/alternative; boundary=a\r\nMessage-ID: <",
                    b"Content-Transfer-Encoding: base64\r\nContent-Type: text/plain",
                ]
            ),
            st.binary(max_size=1000).map(lambda b: b.replace(b"\x00", b"--zz\r\n")),
        ),
        st.builds(
            _damaged,
            st.sampled_from(_SEEDS),
            st.lists(
                st.tuples(
                    st.floats(0, 1),
                    st.one_of(
                        st.binary(max_size=40),
                        st.sampled_from([b"--", b"\r\n\r\n", b"=?x?q?", b"boundary=", b"\xff"]),
                    ),
                ),
                max_size=6,
            ),
        ),
    )
)
def test_parse_message_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    """Whatever arrives, a result comes back, and from the real parse rather than the last-resort
    fallback that keeps the raw text."""
    mail = parse(raw)
    assert mail.message_id.startswith("<")
    assert mail.message_id.endswith(">")
    assert not any(p.startswith("unparseable message") for p in mail.problems)
