"""A vendor reached only by e-mail: SMTP out, a mailbox (IMAP or Maildir) in.

A pure translator with no local state: the mailbox is the record.  A ticket is a mail
thread, its id our tag's id (``[TB-<id>]`` in subjects), its number the vendor's case
number once a vendor mail carried one.  See README.md.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from ticketbridge.adapters.base import AdapterContext, Capability, TicketAdapter
from ticketbridge.adapters.email import defaults
from ticketbridge.adapters.email.mailbox import ImapMailbox, Mailbox, MaildirMailbox, StoredMail
from ticketbridge.adapters.email.parse import MailKind, parse_message
from ticketbridge.adapters.email.settings import EmailSettings
from ticketbridge.adapters.email.thread import (
    Mail,
    Thread,
    build_threads,
    case_thread_id,
    own_id,
)
from ticketbridge.adapters.kit.http import HttpClient
from ticketbridge.adapters.kit.smtp import SmtpSender, SmtpSettings
from ticketbridge.domain import (
    Contact,
    FieldChange,
    Note,
    NoteDraft,
    Side,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketRef,
    Unmatched,
)
from ticketbridge.errors import NotFoundError, PermanentError, TransientError
from ticketbridge.log import get_logger

__all__ = ["EmailAdapter"]

log = get_logger(__name__)
INBOX = "INBOX"


class EmailAdapter(TicketAdapter):
    kind = "email"
    display_name = "E-mail vendor"
    sides = frozenset({Side.VENDOR})
    settings_model = EmailSettings
    capabilities = frozenset(
        {
            Capability.CREATE_TICKET,
            Capability.ADD_NOTE,
            Capability.FIND_BY_NUMBER,
            # escalations: a new priority or a field (``escalation``) is an escalation mail
            Capability.SET_PRIORITY,
            Capability.SET_FIELDS,
        }
    )
    driver = "ticketbridge.adapters.email.driver:EmailDriver"
    #: Arrival times are whole seconds (IMAP INTERNALDATE, a Maildir file's time).
    change_time_resolution = timedelta(seconds=1)
    #: IMAP IDLE (or a Maildir's new files) says when mail arrived.
    announces_changes = True
    known_statuses = tuple(defaults.STATUS_CLASSES)
    status_classes = defaults.STATUS_CLASSES
    priority_ranks = defaults.PRIORITY_RANKS
    closing_terms = defaults.CLOSING_TERMS

    settings: EmailSettings

    def __init__(
        self,
        ctx: AdapterContext,
        settings: EmailSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(ctx, settings)
        #: The daemon's clock: dates our copies and the mailbox read window.
        self.ctx_now = ctx.clock
        s = settings
        self._tag_re = s.tag_regex()
        self._case_re = s.case_regex()
        self._sent_folder = (s.imap or s.inbound).sent_folder  # type: ignore[union-attr]
        self.mailbox: Mailbox
        self._ssl_context = ssl_context
        self._watcher: Mailbox | None = None
        if s.imap is not None:
            self.mailbox = ImapMailbox(s.imap, ssl_context=ssl_context)
        else:
            assert s.inbound is not None
            self.mailbox = MaildirMailbox(s.inbound)
        smtp = SmtpSettings(
            host=s.smtp.host,
            port=s.smtp.port,
            starttls=s.smtp.security == "starttls",
            ssl=s.smtp.security == "tls",
            username=s.smtp.username,
            password=s.smtp.password,
            from_address=s.smtp.from_address,
            timeout=s.smtp.timeout,
        )
        self.sender = SmtpSender(smtp, ssl_context=ssl_context)
        #: Mails handed to the SMTP server (for figures).
        self.mails_sent = 0

    def _make_http(self, ctx: AdapterContext) -> HttpClient:
        # No HTTP API: the client exists because the base class holds one; it is never used.
        return HttpClient(system=ctx.name, base_url=ctx.base_url, timeout=ctx.timeout)

    async def aclose(self) -> None:
        if self._watcher is not None and self._watcher is not self.mailbox:
            await self._watcher.aclose()
        await self.mailbox.aclose()
        await super().aclose()

    # -- reading the mailbox ------------------------------------------------------------
    async def _mails(self) -> list[Mail]:
        since = self.ctx_now() - timedelta(days=self.settings.history_days)
        stored = await self.mailbox.read(INBOX, since)
        stored += await self.mailbox.read(self._sent_folder, since)
        return [self._mail(m) for m in stored]

    def _mail(self, stored: StoredMail) -> Mail:
        s = self.settings
        parsed = parse_message(
            stored.raw,
            attachment_cap=s.attachment_cap,
            case_pattern=self._case_re,
            tag_pattern=self._tag_re,
            own_id_domain=s.id_domain,
        )
        visibility = parsed.headers.get("x-ticketbridge-visibility", "")
        keyed = "x-ticketbridge-key" in parsed.headers
        if stored.folder == INBOX:
            ours = parsed.kind is MailKind.OWN
            public = visibility != "internal"
        else:
            ours = keyed and parsed.from_addr == s.smtp.from_address
            vendor = {s.vendor.support_address, s.vendor.escalation_address} - {None}
            public = visibility == "public" or (
                visibility == "" and bool(vendor & {*parsed.to, *parsed.cc})
            )
        return Mail(stored, parsed, ours=ours, public=public)

    async def _threads(self) -> tuple[dict[str, Thread], list[Mail]]:
        return build_threads(await self._mails(), self.settings.id_domain)

    async def _thread(self, ticket_id: str) -> Thread:
        thread = (await self._threads())[0].get(ticket_id)
        if thread is not None and (thread.mails or not thread.ours):
            return thread
        if thread is None and ticket_id.startswith("case") and len(ticket_id) > 4:
            # a case opened by hand at the vendor, adopted before any mail about it came
            return Thread(ticket_id)
        raise NotFoundError(f"no mail thread {self.settings.tag(ticket_id)}", system=self.name)

    def _ticket(self, thread: Thread) -> Ticket:
        if thread.opening is None:
            return self._adopted(thread)
        return self._thread_ticket(thread)

    def _adopted(self, thread: Thread, number: str | None = None) -> Ticket:
        """A case the vendor opened that has no person's mail yet (opened by hand in its
        portal; or only its system's automatic case-number mail came)."""
        number = thread.case_number or number
        acknowledged = (
            thread.case_mail_at if self.settings.acknowledgment == "case_number" else None
        )
        status = defaults.ACKNOWLEDGED if acknowledged is not None else defaults.SENT
        return Ticket(
            ref=TicketRef(self.name, thread.id, number),
            summary=f"Case {number or thread.id}",
            status=status,
            status_class=self.status_class_of(status) or defaults.STATUS_CLASSES[status],
            contact=Contact(email=self.settings.vendor.support_address),
            created_at=thread.case_mail_at,
            updated_at=thread.updated_at,
            fields={
                "case_number": number,
                "acknowledged_at": acknowledged.isoformat() if acknowledged else None,
                "resolved_at": None,
                "last_from": "vendor" if thread.touched else None,
                "last_message_id": None,
            },
        )

    def _thread_ticket(self, thread: Thread) -> Ticket:
        s = self.settings
        status, acknowledged, resolved = thread.state(s.resolution_phrases, s.acknowledgment)
        if s.acknowledgment == "case_number":
            acknowledged = thread.case_mail_at
        if status == defaults.SENT and acknowledged is not None:
            status = defaults.ACKNOWLEDGED
        opening = thread.opening
        assert opening is not None
        summary = self._tag_re.sub("", opening.parsed.subject).strip()
        last = thread.mails[-1]
        fields = {
            "case_number": thread.case_number,
            "acknowledged_at": acknowledged.isoformat() if acknowledged else None,
            "resolved_at": resolved.isoformat() if resolved else None,
            "last_from": "us" if last.ours else "vendor",
            "last_message_id": last.parsed.message_id,
        }
        stated = _stated(thread)
        priority = stated.pop("priority", None)  # as opened, or as last escalated
        fields.update(stated)
        return Ticket(
            ref=TicketRef(self.name, thread.id, thread.case_number),
            priority=priority,
            priority_rank=self.priority_rank_of(priority),
            summary=summary,
            description=opening.parsed.full_text,
            status=status,
            status_class=self.status_class_of(status) or defaults.STATUS_CLASSES[status],
            contact=Contact(email=s.vendor.support_address),
            created_at=opening.arrived,
            updated_at=thread.updated_at,
            fields=fields,
        )

    async def check(self) -> None:
        await self.sender.login()
        await self.mailbox.check()

    async def changed_tickets(self, since: datetime | None) -> list[TicketChange]:
        threads, _ = await self._threads()
        changes = [
            TicketChange(t.id, t.updated_at, ticket=self._ticket(t))
            for t in threads.values()
            if t.updated_at is not None and (since is None or t.updated_at >= since)
        ]
        return sorted(changes, key=lambda c: (c.updated_at, c.ticket_id))

    async def get_ticket(self, ticket_id: str) -> Ticket:
        return self._ticket(await self._thread(ticket_id))

    async def find_ticket(self, number: str) -> Ticket | None:
        """The thread of the vendor's case ``number`` (or of the thread id ``number``, as the
        review list shows a mail without one).  A case number no mail carried yet is a case
        opened by hand in the vendor's portal: its thread is adopted empty, and the vendor's
        mails about it join it by that number."""
        threads, _ = await self._threads()
        wanted = number.strip()
        if not wanted:
            return None
        for thread in threads.values():
            if (thread.case_number or "").casefold() == wanted.casefold() or thread.id == wanted:
                return self._ticket(thread)
        if not self._case_re.search(wanted):
            return None  # not a case number of this vendor: refuse rather than adopt a typo
        tid = case_thread_id(wanted)
        found = threads.get(tid)
        return self._adopted(found or Thread(tid), wanted)

    async def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[Note]:
        thread = await self._thread(ticket_id)
        # our mail opening the case is the ticket itself; in a thread the vendor opened,
        # every mail of its people is a note (the first one is also the description)
        return [
            self._note(ticket_id, mail, n)
            for n, mail in enumerate(thread.mails)
            if not mail.opens_thread and (since is None or mail.arrived >= since)
        ]

    def _note(self, ticket_id: str, mail: Mail, sequence: int) -> Note:
        from ticketbridge.domain import Visibility

        parsed = mail.parsed
        text = parsed.full_text if mail.ours else (parsed.text or parsed.full_text)
        if parsed.oversized:
            kept_out = ", ".join(
                f"{a.filename} ({a.size / 1048576:.1f} MB)" for a in parsed.oversized
            )
            text += f"\n\n[attachments over the {self.settings.attachment_cap_mb:g} MB cap kept out: {kept_out}]"
        return Note(
            system=self.name,
            ticket_id=ticket_id,
            id=parsed.message_id,
            text=text,
            visibility=Visibility.PUBLIC if mail.public else Visibility.INTERNAL,
            created_at=mail.arrived,
            author=parsed.from_addr or None,
            kind="mail",
            sequence=sequence,
            by_us=mail.ours,
        )

    async def unmatched(self, since: datetime | None = None) -> list[Unmatched]:
        """People's mails that started a thread we did not open (never dropped, never
        deleted); the caller leaves out the threads already linked."""
        threads, started = await self._threads()
        out = []
        for m in started:
            if since is not None and m.arrived < since:
                continue
            thread = next(t for t in threads.values() if m in t.mails)
            out.append(
                Unmatched(
                    ticket_id=thread.id,
                    reference=thread.case_number or thread.id,
                    item_id=m.parsed.message_id,
                    sender=m.parsed.from_addr,
                    subject=m.parsed.subject,
                    at=m.arrived,
                    snippet=" ".join(m.parsed.text.split())[:200],
                )
            )
        return out

    # -- writes ------------------------------------------------------------------------------
    async def _find_key(self, key: str) -> Mail | None:
        for folder in (self._sent_folder, INBOX):
            for stored in await self.mailbox.search_header(folder, "X-Ticketbridge-Key", key):
                mail = self._mail(stored)
                if mail.key == key and (mail.ours or folder == INBOX):
                    return mail
        return None

    def _message(
        self, thread_id: str, key: str, subject: str, body: str, *, public: bool, op: str
    ) -> EmailMessage:
        s = self.settings
        msg = EmailMessage()
        msg["Message-ID"] = own_id(thread_id, key, s.id_domain)
        msg["Date"] = format_datetime(self.ctx_now())
        msg["From"] = s.smtp.from_address
        if public:
            msg["To"] = s.vendor.support_address
            if s.vendor.cc:
                msg["Cc"] = ", ".join(s.vendor.cc)
        msg["Subject"] = " ".join(subject.split())
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
        msg["X-Ticketbridge-Key"] = key
        msg["X-Ticketbridge-Op"] = op
        msg["X-Ticketbridge-Visibility"] = "public" if public else "internal"
        msg.set_content(body, cte="quoted-printable" if not body.isascii() else None)
        return msg

    async def _send(self, msg: EmailMessage, to: list[str] | None = None) -> None:
        """Mail it (with our own copy in the same transaction), then keep the Sent copy."""
        s = self.settings
        recipients = list(to) if to is not None else [s.vendor.support_address, *s.vendor.cc]
        if s.copy_to_mailbox:
            recipients.append(s.smtp.from_address)
        self.mails_sent += 1
        await self.sender.transmit(msg, recipients)
        try:
            await self.mailbox.append(self._sent_folder, bytes(msg), self.ctx_now())
        except (TransientError, PermanentError) as exc:
            if not s.copy_to_mailbox:
                raise TransientError(
                    f"mail sent but its copy not kept: {exc}", system=self.name, uncertain=True
                ) from None
            log.warning("email_sent_copy_failed", system=self.name, error=str(exc))

    async def create_ticket(self, draft: TicketDraft, key: str) -> TicketRef:
        thread_id = key[:12]
        subject = f"{self.settings.tag(thread_id)} {draft.summary}"
        msg = self._message(thread_id, key, subject, draft.description, public=True, op="create")
        priority = _priority_name(draft.priority or "")
        if priority in defaults.MAIL_PRIORITY:
            msg["X-Ticketbridge-Priority"] = priority
            msg["X-Priority"], msg["Importance"] = defaults.MAIL_PRIORITY[priority]
        await self._send(msg)
        return TicketRef(self.name, thread_id, None)

    async def find_created(self, key: str) -> TicketRef | None:
        mail = await self._find_key(key)
        if mail is None or not mail.opens_thread:
            return None
        return TicketRef(self.name, key[:12], None)

    async def add_note(self, ticket_id: str, note: NoteDraft, key: str) -> str | None:
        thread = await self._thread(ticket_id)
        opening = thread.opening
        summary = self._tag_re.sub("", opening.parsed.subject).strip() if opening else ""
        summary = summary[4:] if summary.lower().startswith("re: ") else summary
        case = f" {thread.case_number}" if thread.case_number else ""
        if opening is None and not case and ticket_id.startswith("case"):
            case = f" {ticket_id[4:]}"  # a case adopted by hand: its number as typed, bare
        subject = f"Re: {self.settings.tag(ticket_id)}{case} {summary}"
        public = note.visibility.is_public
        msg = self._message(ticket_id, key, subject, note.text, public=public, op="note")
        if thread.mails:
            last = thread.mails[-1].parsed
            refs = [*last.references, last.message_id][-20:]
            msg["In-Reply-To"] = last.message_id
            msg["References"] = " ".join(refs)
        if public:
            await self._send(msg)
        else:
            # An e-mail vendor has no internal notes: kept in our mailbox, never mailed.
            await self.mailbox.append(self._sent_folder, bytes(msg), self.ctx_now())
        return str(msg["Message-ID"])

    async def find_note(
        self, ticket_id: str, key: str, note: NoteDraft, since: datetime | None = None
    ) -> str | None:
        mail = await self._find_key(key)
        return None if mail is None else mail.parsed.message_id

    async def update_ticket(self, ticket_id: str, change: FieldChange) -> None:
        """An escalation: a priority or fields (``escalation: 2``) that differ from what the
        thread last stated are mailed to the vendor's escalation contact (copying the
        account manager and the support address) as a reply in the thread; what is already
        stated sends nothing -- also after a crash between the mail and its record, since
        the thread (our copy of every mail) is what is compared."""
        wanted: dict[str, str] = {k: str(v) for k, v in sorted((change.fields or {}).items())}
        if change.priority is not None:
            wanted["priority"] = _priority_name(change.priority)
        if not wanted:
            return  # the link value and nothing else: a thread has no field to hold it
        thread = await self._thread(ticket_id)
        stated = _stated(thread)
        differs = {k: v for k, v in wanted.items() if stated.get(k) != v}
        if not differs:
            return
        s = self.settings
        opening = thread.opening
        summary = self._tag_re.sub("", opening.parsed.subject).strip() if opening else ""
        summary = summary[4:] if summary.lower().startswith("re: ") else summary
        case = thread.case_number or (ticket_id[4:] if ticket_id.startswith("case") else "")
        lines = [
            f"We are escalating {('case ' + case) if case else 'this case'}"
            + (f" ({summary})" if summary else "")
            + ":",
            "",
        ]
        for name, value in differs.items():
            lines.append(
                f"- {name}: {value}" + (f" (was {stated[name]})" if name in stated else "")
            )
        lines += ["", "The thread below holds the history. Please confirm who is handling it."]
        key = hashlib.sha256(
            json.dumps([ticket_id, wanted, len(thread.mails)], sort_keys=True).encode()
        ).hexdigest()[:24]
        subject = f"ESCALATION: Re: {s.tag(ticket_id)}{' ' + case if case else ''} {summary}"
        msg = self._message(ticket_id, key, subject, "\n".join(lines), public=True, op="escalate")
        to = s.vendor.escalation_address or s.vendor.support_address
        copies = [
            a
            for a in (s.vendor.account_manager, s.vendor.support_address, *s.vendor.cc)
            if a and a != to
        ]
        del msg["To"], msg["Cc"]
        msg["To"] = to
        if copies:
            msg["Cc"] = ", ".join(dict.fromkeys(copies))
        msg["X-Ticketbridge-Set"] = json.dumps({**stated, **wanted}, sort_keys=True)
        if "priority" in differs and differs["priority"] in defaults.MAIL_PRIORITY:
            msg["X-Priority"], msg["Importance"] = defaults.MAIL_PRIORITY[differs["priority"]]
        if thread.mails:
            last = thread.mails[-1].parsed
            msg["In-Reply-To"] = last.message_id
            msg["References"] = " ".join([*last.references, last.message_id][-20:])
        await self._send(msg, [to, *dict.fromkeys(copies)])

    async def wait_for_changes(self, timeout: float) -> bool:  # noqa: ASYNC109
        """New mail in the inbox (IMAP IDLE on a connection of its own, so reads and writes
        never wait behind it; a Maildir is watched for new files)."""
        if self._watcher is None:
            s = self.settings
            self._watcher = (
                ImapMailbox(s.imap, ssl_context=self._ssl_context)
                if s.imap is not None
                else self.mailbox
            )
        return await self._watcher.wait(INBOX, timeout)


def _stated(thread: Thread) -> dict[str, str]:
    """The priority and fields the thread last stated: the opening's priority, then each
    escalation mail of ours (``X-Ticketbridge-Set``) in order."""
    stated: dict[str, str] = {}
    opening = thread.opening
    if opening is not None and opening.ours:
        priority = opening.parsed.headers.get("x-ticketbridge-priority", "").strip().casefold()
        if priority:
            stated["priority"] = priority
    for mail in thread.mails:
        raw = mail.parsed.headers.get("x-ticketbridge-set") if mail.ours else None
        if not raw:
            continue
        try:
            values = json.loads(raw)
        except ValueError:
            continue
        if isinstance(values, dict):
            stated.update({str(k): str(v) for k, v in values.items()})
    return stated


def _priority_name(value: str) -> str:
    """A priority as mail states it: urgent, high, normal, low -- also given as its rank
    ("1" is urgent), as rules written for numbered vendor priorities say it."""
    name = str(value).strip().casefold()
    if name.isdigit():
        by_rank = {rank: n for n, rank in defaults.PRIORITY_RANKS.items()}
        return by_rank.get(int(name), name)
    return name
