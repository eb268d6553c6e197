"""Mails -> threads -> tickets and notes (pure: no I/O).

A thread is identified by our tag's id.  A mail joins a thread, in this order, by:
our own Message-ID (``<tb.{id}.{key}@{id_domain}>``), the tag in its subject, a
Message-ID it answers (``In-Reply-To``, then ``References``), or the vendor's case
number captured earlier in the thread.  The first mail of a thread is the one that
opened it (``X-Ticketbridge-Op: create``); later mails are its notes.

A mail that joins none of our threads starts a thread *the vendor* opened (a case opened
by hand in the vendor's portal or by a person's own mail): its id is ``case<number>`` when
it carries the vendor's case number, else ``mail<hash of its Message-ID>``, so the vendor's
later mails on it thread by case number and references like any other.  Such a thread is
linked when an engineer types its case number (or id) into the PSA ticket; until then it is
on the review list (``unmatched``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ticketbridge.adapters.email import defaults
from ticketbridge.adapters.email.mailbox import StoredMail
from ticketbridge.adapters.email.parse import MailKind, ParsedMail

__all__ = [
    "Mail",
    "Thread",
    "build_threads",
    "case_thread_id",
    "own_id",
    "thread_of_own_id",
]

_OWN_ID_RE = re.compile(r"^<tb\.([A-Za-z0-9]+)\.([0-9a-f]+)@(.+)>$")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def case_thread_id(case_number: str) -> str:
    """The id of the thread of a case the vendor opened (``case`` + the number's letters and
    digits): what a case number typed into a PSA ticket is linked to before any mail."""
    return "case" + _NOT_ALNUM.sub("", case_number)


def mail_thread_id(message_id: str) -> str:
    """The id of a thread a vendor's mail with no case number started."""
    return "mail" + hashlib.sha256(message_id.encode()).hexdigest()[:12]


def own_id(thread_id: str, key: str, domain: str) -> str:
    return f"<tb.{thread_id}.{key}@{domain}>"


def thread_of_own_id(message_id: str, domain: str) -> str | None:
    found = _OWN_ID_RE.match(message_id)
    if found is None or found.group(3).lower() != domain:
        return None
    return found.group(1)


@dataclass(frozen=True)
class Mail:
    stored: StoredMail
    parsed: ParsedMail
    #: Written by us: a copy we keep (our key header and our From) or our own loop.
    ours: bool
    #: Mailed (delivered or sent); an entry kept only in our mailbox is internal.
    public: bool

    @property
    def arrived(self) -> datetime:
        return self.stored.arrived

    @property
    def key(self) -> str | None:
        return self.parsed.headers.get("x-ticketbridge-key")

    @property
    def opens_thread(self) -> bool:
        return self.parsed.headers.get("x-ticketbridge-op", "") == "create"


@dataclass
class Thread:
    id: str
    mails: list[Mail] = field(default_factory=list)
    case_number: str | None = None
    case_mail_at: datetime | None = None
    #: Arrival of threaded mails that are not notes but change the ticket (the vendor
    #: system's automatic case-number mail).
    touched: list[datetime] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        """Opened by us (our tag's id), not by the vendor."""
        return not self.id.startswith(("case", "mail"))

    @property
    def opening(self) -> Mail | None:
        return next(
            (m for m in self.mails if m.opens_thread), self.mails[0] if self.mails else None
        )

    @property
    def updated_at(self) -> datetime | None:
        return max([m.arrived for m in self.mails] + self.touched, default=None)

    def notes(self) -> list[Mail]:
        opening = self.opening
        return [m for m in self.mails if m is not opening]

    def state(
        self, phrases: tuple[str, ...], acknowledgment: str
    ) -> tuple[str, datetime | None, datetime | None]:
        """(status, acknowledged at, resolved at) from who wrote what, in arrival order."""
        from ticketbridge.adapters.email.parse import says_resolved

        acknowledged: datetime | None = None
        resolved: datetime | None = None
        status = defaults.SENT
        for mail in self.mails:
            if not mail.public:
                continue
            if mail.ours:
                if status != defaults.SENT:
                    status = defaults.WAITING_ON_VENDOR
                resolved = None if status != defaults.RESOLVED else resolved
                continue
            text = mail.parsed.text
            if acknowledged is None and (
                acknowledgment == "first_reply" or mail.parsed.case_number is not None
            ):
                acknowledged = mail.arrived
            if says_resolved(text, phrases):
                status, resolved = defaults.RESOLVED, mail.arrived
            elif "?" in text:
                status = defaults.WAITING_ON_US
            else:
                status = defaults.ACKNOWLEDGED
        return status, acknowledged, resolved


def build_threads(mails: Iterable[Mail], domain: str) -> tuple[dict[str, Thread], list[Mail]]:
    """Group mails (any order) into threads; also return the human mails that started a
    thread the vendor opened (the review list's entries; the caller leaves out those linked)."""
    threads: dict[str, Thread] = {}
    by_message_id: dict[str, str] = {}
    by_case: dict[str, str] = {}
    started: list[Mail] = []
    seen: set[str] = set()
    ordered = sorted(mails, key=lambda m: (m.arrived, not m.ours, m.stored.folder, m.stored.uid))
    pending = list(ordered)
    # Two passes: a vendor reply may arrive before our copy was appended (clocks, folders).
    for _ in range(2):
        later: list[Mail] = []
        for mail in pending:
            tid = _thread_for(mail, domain, by_message_id, by_case)
            if tid is None:
                later.append(mail)
                continue
            _join(mail, tid, threads, by_message_id, by_case, seen)
        pending = later
    # What is left joins no thread of ours: the vendor's own threads, in arrival order.
    for mail in pending:
        parsed = mail.parsed
        if mail.ours or parsed.message_id in seen:
            continue
        tid = _thread_for(mail, domain, by_message_id, by_case)
        if tid is None:
            if parsed.case_number and parsed.kind in (MailKind.HUMAN, MailKind.AUTO_REPLY):
                tid = case_thread_id(parsed.case_number)
            elif parsed.kind is MailKind.HUMAN:
                tid = mail_thread_id(parsed.message_id)
            else:
                continue  # an auto-reply or bounce about nothing we know
            if parsed.kind is MailKind.HUMAN and tid not in threads:
                started.append(mail)  # a thread the vendor opened (not a case we adopted)
        _join(mail, tid, threads, by_message_id, by_case, seen)
    for thread in threads.values():
        thread.mails.sort(key=lambda m: (m.arrived, m.stored.folder != "sent", m.stored.uid))
    return threads, started


def _thread_for(
    mail: Mail, domain: str, by_message_id: dict[str, str], by_case: dict[str, str]
) -> str | None:
    parsed = mail.parsed
    tid = thread_of_own_id(parsed.message_id, domain)
    if tid is not None and mail.ours:
        return tid
    if parsed.tag:
        return parsed.tag
    for ref in (parsed.in_reply_to, *reversed(parsed.references)):
        if ref is None:
            continue
        tid = by_message_id.get(ref) or thread_of_own_id(ref, domain)
        if tid is not None:
            return tid
    if parsed.case_number and parsed.case_number in by_case:
        return by_case[parsed.case_number]
    return None


def _join(
    mail: Mail,
    tid: str,
    threads: dict[str, Thread],
    by_message_id: dict[str, str],
    by_case: dict[str, str],
    seen: set[str],
) -> None:
    parsed = mail.parsed
    by_message_id.setdefault(parsed.message_id, tid)
    if parsed.message_id in seen:
        return  # the same mail twice: our sent copy and its copy delivered back to us
    seen.add(parsed.message_id)
    thread = threads.setdefault(tid, Thread(tid))
    # The vendor's case number, also from its ticketing system's automatic mail.
    automatic = parsed.kind in (MailKind.HUMAN, MailKind.AUTO_REPLY)
    if not mail.ours and automatic and parsed.case_number and thread.case_number is None:
        thread.case_number = parsed.case_number
        thread.case_mail_at = mail.arrived
        by_case.setdefault(parsed.case_number, tid)
        if parsed.kind is not MailKind.HUMAN:
            thread.touched.append(mail.arrived)
    if not mail.ours and parsed.kind is not MailKind.HUMAN:
        return  # auto-replies, out-of-office, bounces: threaded, never notes
    thread.mails.append(mail)
