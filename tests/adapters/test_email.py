"""The e-mail vendor adapter against real servers: Dovecot (IMAP) and aiosmtpd (SMTP).

Vendor mails land in the test user's Maildir as a delivery agent puts them there; the
adapter reads them over IMAP and sends over SMTP (STARTTLS or implicit TLS, AUTH).
"""

from __future__ import annotations

import asyncio
import mailbox
import secrets
import time
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest

from tests.mail.servers import PASSWORD, USER, VENDOR, MailWorld
from ticketbridge.adapters.base import AdapterContext
from ticketbridge.adapters.email import EmailAdapter, EmailSettings
from ticketbridge.adapters.email.mailserver import MailServer
from ticketbridge.adapters.email.parse import parse_message
from ticketbridge.clock import utcnow
from ticketbridge.domain import FieldChange, NoteDraft, TicketDraft, Visibility
from ticketbridge.errors import AuthFailedError, TransientError

pytestmark = pytest.mark.anyio

Make = Callable[..., EmailAdapter]


@pytest.fixture
async def make(mail_world: MailWorld) -> AsyncIterator[Make]:
    made: list[EmailAdapter] = []

    def build(
        smtp: MailServer,
        *,
        smtp_security: str = "starttls",
        imap_security: str = "starttls",
        smtp_password: str = PASSWORD,
        imap_password: str = PASSWORD,
        idle: bool = True,
        **extra: Any,
    ) -> EmailAdapter:
        imap_port = mail_world.imaps_port if imap_security == "tls" else mail_world.imap_port
        settings = EmailSettings.model_validate(
            {
                "smtp": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": smtp_security,
                    "username": USER,
                    "password": smtp_password,
                    "from_address": USER,
                    "timeout": 5,
                },
                "vendor": {"support_address": VENDOR},
                "imap": {
                    "host": "127.0.0.1",
                    "port": imap_port,
                    "security": imap_security,
                    "username": USER,
                    "password": imap_password,
                    "idle": idle,
                    "timeout": 10,
                },
                "id_domain": "tb.msp.example",
                **extra,
            }
        )
        ctx = AdapterContext(name="vendor", base_url="https://support.vendor.example")
        adapter = EmailAdapter(ctx, settings, ssl_context=mail_world.client_tls())
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


def vendor_mail(
    world: MailWorld,
    subject: str,
    text: str,
    *,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    sender: str = VENDOR,
    message_id: bool = True,
) -> str:
    """Deliver a mail from the vendor into the mailbox (as a delivery agent does)."""
    msg = EmailMessage()
    mid = make_msgid(domain="vendor.example")
    if message_id:
        msg["Message-ID"] = mid
    msg["Date"] = format_datetime(utcnow())
    msg["From"] = sender
    msg["To"] = USER
    msg["Subject"] = subject
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    deliver(world, bytes(msg))
    return mid


def deliver(world: MailWorld, raw: bytes) -> None:
    mailbox.Maildir(world.maildir, create=False).add(mailbox.MaildirMessage(raw))


def sent_to_vendor(server: MailServer) -> list[Any]:
    return [
        message_from_bytes(r.raw, policy=policy.default)
        for r in server.received
        if VENDOR in r.recipients
    ]


async def opened(adapter: EmailAdapter, summary: str = "Line down") -> tuple[str, str]:
    key = secrets.token_hex(8)
    draft = TicketDraft(summary, "The line is down since 9:00.", priority="Urgent")
    ref = await adapter.create_ticket(draft, key)
    return ref.id, key


# -- sending ---------------------------------------------------------------------------------------
async def test_create_over_starttls_with_auth_carries_the_thread_headers(make, smtp_starttls):
    """A ticket opened over STARTTLS + AUTH is one mail to the support address with our tag,
    our Message-ID (key inside, our id domain), Auto-Submitted and the key header; it is found
    again by key over IMAP."""
    adapter = make(smtp_starttls)
    await adapter.check()
    tid, key = await opened(adapter)
    [mail] = sent_to_vendor(smtp_starttls)
    assert f"[TB-{tid}] Line down" == mail["Subject"]
    assert f"<tb.{tid}.{key}@tb.msp.example>" == mail["Message-ID"]
    assert "auto-generated" == mail["Auto-Submitted"]
    assert key == mail["X-Ticketbridge-Key"]
    assert ("1 (Highest)", "high") == (mail["X-Priority"], mail["Importance"])
    ticket = await adapter.get_ticket(tid)
    assert ("urgent", 1, "Line down") == (ticket.priority, ticket.priority_rank, ticket.summary)
    ref = await adapter.find_created(key)
    assert ref is not None
    assert tid == ref.id
    assert None is await adapter.find_created(secrets.token_hex(8))


async def test_notes_over_implicit_tls_reply_in_the_thread(make, smtp_tls):
    """Over implicit TLS (SMTP 465-style and IMAPS) a public note answers the thread's last
    mail (In-Reply-To, References) and is read back as ours."""
    adapter = make(smtp_tls, smtp_security="tls", imap_security="tls")
    tid, _ = await opened(adapter)
    key = secrets.token_hex(8)
    written = await adapter.add_note(tid, NoteDraft("Any news?", Visibility.PUBLIC), key)
    first, note = sent_to_vendor(smtp_tls)
    assert first["Message-ID"] == note["In-Reply-To"]
    assert first["Message-ID"] in note["References"]
    notes = await adapter.list_notes(tid)
    assert [(written, "Any news?", True, True)] == [
        (n.id, n.text, n.by_us, n.visibility.is_public) for n in notes
    ]


@pytest.mark.parametrize("which", ["smtp", "imap"])
async def test_wrong_credentials_are_an_auth_error(make, smtp_starttls, which):
    """Refused SMTP AUTH or IMAP LOGIN surfaces as AuthFailedError."""
    if which == "smtp":
        adapter = make(smtp_starttls, smtp_password="wrong")
    else:
        adapter = make(smtp_starttls, imap_password="wrong")
    with pytest.raises(AuthFailedError):
        await adapter.check()


async def test_internal_notes_are_kept_not_mailed(make, smtp_starttls):
    """An e-mail vendor has no internal notes: one is kept in our mailbox, never mailed."""
    adapter = make(smtp_starttls)
    tid, _ = await opened(adapter)
    await adapter.add_note(tid, NoteDraft("Our own notes", Visibility.INTERNAL), "a" * 16)
    await adapter.add_note(tid, NoteDraft("Unknown kind", Visibility.UNKNOWN), "b" * 16)
    assert 1 == len(sent_to_vendor(smtp_starttls))
    notes = await adapter.list_notes(tid)
    assert [("Our own notes", False), ("Unknown kind", False)] == [
        (n.text, n.visibility.is_public) for n in notes
    ]


async def test_a_lost_answer_after_data_is_found_by_key_not_sent_twice(make, smtp_starttls):
    """The server takes the mail but the answer is lost: uncertain; the copy delivered to our
    mailbox in the same transaction proves it was sent, so it is found by key."""
    adapter = make(smtp_starttls)
    tid, _ = await opened(adapter)
    note, key = NoteDraft("Exactly once", Visibility.PUBLIC), secrets.token_hex(8)
    smtp_starttls.fail_after_data()
    with pytest.raises(TransientError) as failed:
        await adapter.add_note(tid, note, key)
    assert failed.value.uncertain
    found = await adapter.find_note(tid, key, note)
    assert found is not None
    assert 1 == sum("Exactly once" in m.get_content() for m in sent_to_vendor(smtp_starttls))
    assert ["Exactly once"] == [n.text for n in await adapter.list_notes(tid)]


# -- escalation ------------------------------------------------------------------------------------
async def test_an_escalation_is_one_mail_to_the_escalation_contact_and_never_twice(
    make, smtp_starttls, mail_world
):
    """A rule raising the vendor's priority or setting its escalation field mails the
    escalation contact, copying the account manager and support, in the thread; the same
    escalation again (a retry, or after a restart) sends nothing."""
    vendor = {
        "support_address": VENDOR,
        "escalation_address": "escalations@vendor.example",
        "account_manager": "am@vendor.example",
    }
    adapter = make(smtp_starttls, vendor=vendor)
    tid, _ = await opened(adapter)
    ours = sent_to_vendor(smtp_starttls)[0]["Message-ID"]
    before = len(smtp_starttls.received)
    await adapter.update_ticket(tid, FieldChange(priority="High", fields={"escalation": "2"}))
    mails = [message_from_bytes(r.raw, policy=policy.default) for r in smtp_starttls.received]
    escalation = mails[before:]
    assert 1 == len(escalation)
    got = escalation[0]
    assert "escalations@vendor.example" == got["To"]
    assert {"am@vendor.example", VENDOR} == {a.strip() for a in str(got["Cc"]).split(",")}
    assert str(got["Subject"]).startswith(f"ESCALATION: Re: [TB-{tid}]")
    assert ours == got["In-Reply-To"]
    assert "priority: high (was urgent)" in got.get_content()
    assert "escalation: 2" in got.get_content()
    ticket = await adapter.get_ticket(tid)
    assert ("high", "2") == (ticket.priority, ticket.fields["escalation"])
    await adapter.update_ticket(tid, FieldChange(priority="high", fields={"escalation": "2"}))
    again = make(smtp_starttls, vendor=vendor)  # a restart: only the mailbox remembers
    await again.update_ticket(tid, FieldChange(fields={"escalation": "2"}))
    assert before + 1 == len(smtp_starttls.received)
    await again.update_ticket(tid, FieldChange(fields={"escalation": "3"}))
    assert before + 2 == len(smtp_starttls.received)


# -- threading --------------------------------------------------------------------------------------
async def test_threading_by_in_reply_to_references_tag_and_case_number(
    make, smtp_starttls, mail_world
):
    """Vendor mails join the thread by In-Reply-To, by References, by our tag, and -- once
    its acknowledgment carried one -- by the vendor's case number alone; the case number
    becomes the ticket's number and goes into our later subjects."""
    adapter = make(smtp_starttls)
    tid, _ = await opened(adapter)
    ours = sent_to_vendor(smtp_starttls)[0]["Message-ID"]
    case = f"CS{secrets.randbelow(10**7):07d}"
    ack = vendor_mail(
        mail_world, f"Case {case} opened", f"Your case {case} has been created.", in_reply_to=ours
    )
    vendor_mail(mail_world, "Re: your mail", "Checking the line.", references=f"{ours} {ack}")
    vendor_mail(mail_world, f"Update [TB-{tid}]", "Engineer dispatched.")
    vendor_mail(mail_world, f"{case} progress", "Engineer on site.")
    notes = await adapter.list_notes(tid)
    assert [
        f"Your case {case} has been created.",
        "Checking the line.",
        "Engineer dispatched.",
        "Engineer on site.",
    ] == [n.text for n in notes]
    assert {False} == {n.by_us for n in notes}
    ticket = await adapter.get_ticket(tid)
    assert case == ticket.ref.number
    assert tid == (await adapter.find_ticket(case)).ref.id  # type: ignore[union-attr]
    await adapter.add_note(tid, NoteDraft("Thanks", Visibility.PUBLIC), secrets.token_hex(8))
    assert case in sent_to_vendor(smtp_starttls)[-1]["Subject"]


async def test_automatons_and_our_own_loop_are_never_notes(make, smtp_starttls, mail_world):
    """An auto-reply, an out-of-office, a bounce and our own mail coming back are threaded
    but never notes, and do not acknowledge the case."""
    adapter = make(smtp_starttls)
    tid, _ = await opened(adapter)
    ours = sent_to_vendor(smtp_starttls)[0]
    tag = f"[TB-{tid}]"
    vendor_mail(mail_world, f"Re: {tag}", "We got it.", headers={"Auto-Submitted": "auto-replied"})
    vendor_mail(mail_world, f"Out of office: {tag}", "Back Monday.")
    vendor_mail(
        mail_world,
        f"Undelivered Mail Returned to Sender {tag}",
        "Delivery failed.",
        sender="MAILER-DAEMON@vendor.example",
    )
    deliver(mail_world, bytes(ours))  # a forwarding loop hands our mail back
    assert [] == await adapter.list_notes(tid)
    ticket = await adapter.get_ticket(tid)
    assert "sent" == ticket.status
    assert None is ticket.fields["acknowledged_at"]


async def test_unmatched_mail_is_listed_not_dropped(make, smtp_starttls, mail_world):
    """A human mail that matches no thread is listed for review and stays in the mailbox."""
    adapter = make(smtp_starttls)
    marker = secrets.token_hex(4)
    mid = vendor_mail(mail_world, f"Maintenance notice {marker}", "Planned work on Sunday.")
    listed = [u for u in await adapter.unmatched() if u.item_id == mid]
    assert [(VENDOR, f"Maintenance notice {marker}", "Planned work on Sunday.")] == [
        (u.sender, u.subject, u.snippet) for u in listed
    ]
    assert mid in {u.item_id for u in await adapter.unmatched()}


async def test_a_case_opened_in_the_portal_is_adopted_by_its_number(
    make, smtp_starttls, mail_world
):
    """An engineer opened the case in the vendor's portal and typed its number into the PSA:
    the adapter adopts it before any mail, our notes go out carrying the number, and the
    vendor's later mails about it join the same thread by that number."""
    adapter = make(smtp_starttls)
    case = f"CS{secrets.randbelow(10**7):07d}"
    adopted = await adapter.find_ticket(case)
    assert adopted is not None
    assert (f"case{case}", case, "sent") == (adopted.ref.id, adopted.ref.number, adopted.status)
    assert [] == await adapter.list_notes(adopted.ref.id)
    assert None is await adapter.find_ticket("not a case")  # a typo is not adopted
    await adapter.add_note(
        adopted.ref.id, NoteDraft("Client reports the line is still down.", Visibility.PUBLIC), "k1"
    )
    mailed = sent_to_vendor(smtp_starttls)[-1]
    assert case in mailed["Subject"]
    vendor_mail(mail_world, f"Update on {case}", "An engineer is on the way.")
    notes = await adapter.list_notes(adopted.ref.id)
    assert ["An engineer is on the way."] == [n.text for n in notes if not n.by_us]
    ticket = await adapter.get_ticket(adopted.ref.id)
    assert (case, "acknowledged") == (ticket.ref.number, ticket.status)
    # the vendor's thread is listed for review only until it is linked (the caller filters)
    listed = {u.ticket_id: u for u in await adapter.unmatched()}
    assert f"case{case}" not in listed  # started by our note, not by a person's mail


async def test_a_person_mailing_about_a_new_case_starts_a_vendor_thread(
    make, smtp_starttls, mail_world
):
    """A person's mail that matches none of our threads starts the vendor's own thread: on the
    review list with the reference to type into a PSA ticket, and found by it."""
    adapter = make(smtp_starttls)
    case = f"CS{secrets.randbelow(10**7):07d}"
    first = vendor_mail(mail_world, f"Outage affecting your circuit, case {case}", "Fibre cut.")
    vendor_mail(mail_world, "Re: outage", "Splicing now.", in_reply_to=first)
    bare = vendor_mail(mail_world, f"Question {secrets.token_hex(3)}", "Who is your contact?")
    listed = {u.item_id: u for u in await adapter.unmatched()}
    assert case == listed[first].reference
    assert listed[bare].reference == listed[bare].ticket_id
    ticket = await adapter.find_ticket(case)
    assert ticket is not None
    assert ticket.ref.id == listed[first].ticket_id
    texts = [n.text for n in await adapter.list_notes(ticket.ref.id)]
    assert ["Fibre cut.", "Splicing now."] == texts  # the vendor opened it: all its mails
    assert "Fibre cut." in ticket.description
    by_id = await adapter.find_ticket(listed[bare].reference)
    assert by_id is not None
    assert "Who is your contact?" in by_id.description


async def test_status_follows_who_wrote_last_and_resolution_phrases(
    make, smtp_starttls, mail_world
):
    """sent -> acknowledged (first human reply, its time recorded) -> waiting on us (a
    question) -> waiting on vendor (we answer) -> resolved (a resolution phrase)."""
    adapter = make(smtp_starttls)
    tid, _ = await opened(adapter)
    tag = f"[TB-{tid}]"
    assert "sent" == (await adapter.get_ticket(tid)).status
    vendor_mail(mail_world, f"Re: {tag}", "We are looking into it.")
    ticket = await adapter.get_ticket(tid)
    assert ("acknowledged", "working") == (ticket.status, ticket.status_class.value)
    assert ticket.fields["acknowledged_at"] is not None
    vendor_mail(mail_world, f"Re: {tag}", "Can you reboot the router?")
    assert "waiting on us" == (await adapter.get_ticket(tid)).status
    await adapter.add_note(tid, NoteDraft("Rebooted.", Visibility.PUBLIC), secrets.token_hex(8))
    assert "waiting on vendor" == (await adapter.get_ticket(tid)).status
    vendor_mail(mail_world, f"Re: {tag}", "The fault has been resolved.\n\n-- \nVendor NOC")
    ticket = await adapter.get_ticket(tid)
    assert ("resolved", True) == (ticket.status, ticket.closed)
    changes = await adapter.changed_tickets(ticket.updated_at)
    assert tid in {c.ticket_id for c in changes}


async def test_bad_mail_in_a_thread_is_kept_with_what_could_be_read(
    make, smtp_starttls, mail_world
):
    """No Message-ID and an attachment over the cap: the mail is a note (a synthetic,
    stable id), the attachment kept out and said so."""
    adapter = make(smtp_starttls, attachment_cap_mb=0.01)
    tid, _ = await opened(adapter)
    vendor_mail(mail_world, f"Re: [TB-{tid}]", "No id here.", message_id=False)
    msg = EmailMessage()
    msg["Message-ID"] = make_msgid(domain="vendor.example")
    msg["From"], msg["To"], msg["Subject"] = VENDOR, USER, f"Re: [TB-{tid}] logs"
    msg.set_content("Logs attached.")
    msg.add_attachment(b"x" * 50_000, maintype="application", subtype="zip", filename="logs.zip")
    deliver(mail_world, bytes(msg))
    notes = await adapter.list_notes(tid)
    assert 2 == len(notes)
    assert notes[0].id.endswith("@missing.invalid>")
    assert notes[0].id == (await adapter.list_notes(tid))[0].id
    assert "logs.zip" in notes[1].text
    assert "kept out" in notes[1].text


# -- waiting for mail ---------------------------------------------------------------------------------
@pytest.mark.parametrize("idle", [True, False], ids=["idle", "poll"])
async def test_a_vendor_reply_is_seen_soon_after_it_lands(make, smtp_starttls, mail_world, idle):
    """With IDLE the server wakes us when the reply lands; polling sees it on the next read.
    Prints the time from landing to list_notes seeing it."""
    adapter = make(smtp_starttls, idle=idle)
    tid, _ = await opened(adapter)
    await adapter.list_notes(tid)
    waiting = asyncio.create_task(adapter.wait_for_changes(5.0 if idle else 1.0))
    await asyncio.sleep(0.3)
    landed = time.monotonic()
    vendor_mail(mail_world, f"Re: [TB-{tid}]", "Here is our answer.")
    woke = await waiting
    notes = await adapter.list_notes(tid)
    seen = time.monotonic() - landed
    assert ["Here is our answer."] == [n.text for n in notes]
    assert woke is idle
    print(f"\nlanding -> list_notes ({'IDLE' if idle else 'poll every 1 s'}): {seen:.3f} s")
    if idle:
        assert seen < 3.0


async def test_mails_and_round_trips_per_mirrored_note(make, smtp_starttls):
    """Counts what one mirrored public note costs once the mailbox is read: one mail, and
    the IMAP commands of the thread read plus the Sent copy."""
    adapter = make(smtp_starttls)
    tid, _ = await opened(adapter)
    await adapter.list_notes(tid)
    before_mails, before_trips = adapter.mails_sent, adapter.mailbox.round_trips
    for n in range(5):
        await adapter.add_note(tid, NoteDraft(f"Note {n}", Visibility.PUBLIC), secrets.token_hex(8))
    mails = (adapter.mails_sent - before_mails) / 5
    trips = (adapter.mailbox.round_trips - before_trips) / 5
    print(f"\nper mirrored note: {mails:.1f} mail(s) sent, {trips:.1f} IMAP round trips")
    assert 1.0 == mails
    assert trips <= 8


async def test_the_vendor_systems_automatic_case_mail_gives_the_number(
    make, smtp_starttls, mail_world
):
    """A vendor system's automatic "case created" mail is no note, but its case number is
    captured and, with ``acknowledgment: case_number``, it acknowledges the case."""
    adapter = make(smtp_starttls, acknowledgment="case_number")
    tid, _ = await opened(adapter)
    case = f"CS{secrets.randbelow(10**7):07d}"
    vendor_mail(
        mail_world,
        f"[TB-{tid}] Case {case} created",
        f"Your case {case} has been created.",
        headers={"Auto-Submitted": "auto-generated"},
    )
    assert [] == await adapter.list_notes(tid)
    ticket = await adapter.get_ticket(tid)
    assert (case, "acknowledged") == (ticket.ref.number, ticket.status)
    assert ticket.fields["acknowledged_at"] is not None
    assert ticket.fields["acknowledged_at"] == ticket.updated_at.isoformat()


# -- settings -----------------------------------------------------------------------------------------
def test_settings_name_the_key_and_the_fix():
    """Bad settings are refused naming what to write instead."""
    from pydantic import ValidationError

    base = {
        "smtp": {"host": "smtp.example", "from_address": USER},
        "vendor": {"support_address": VENDOR},
    }
    with pytest.raises(ValidationError) as neither:
        EmailSettings.model_validate(base)
    assert "set exactly one inbound mailbox" in str(neither.value)
    inbound = {"inbound": {"maildir": "/tmp/x"}}
    with pytest.raises(ValidationError) as tag:
        EmailSettings.model_validate({**base, **inbound, "subject_tag": "[TB]"})
    assert "{id} exactly once" in str(tag.value)
    with pytest.raises(ValidationError) as pattern:
        EmailSettings.model_validate({**base, **inbound, "case_pattern": "(CS"})
    assert "case_pattern is not a regular expression" in str(pattern.value)
    settings = EmailSettings.model_validate({**base, **inbound, "subject_tag": "<{id}>"})
    assert "ab12" == settings.tag_regex().search("Re: <ab12> line down").group(1)


async def test_a_missing_folder_leaves_the_mailbox_usable(make, smtp_starttls, mail_world):
    """Reading a folder that does not exist (a Sent folder not made yet) deselects the
    folder selected before it (RFC 3501): the next read of the inbox selects it again
    instead of searching in no folder."""
    adapter = make(smtp_starttls)
    mid = vendor_mail(mail_world, f"Hello {secrets.token_hex(3)}", "Anyone there?")
    box = adapter.mailbox
    token = mid.strip("<>").split("@")[0]
    assert 1 == len(await box.search_header("INBOX", "Message-ID", token))  # INBOX selected
    assert [] == await box.search_header("No-Such-Folder", "Message-ID", token)
    found = await box.search_header("INBOX", "Message-ID", token)
    assert [mid] == [parse_message(m.raw).message_id for m in found]
