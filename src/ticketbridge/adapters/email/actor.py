"""A vendor's support desk at the other end of the mail: for the demo and end-to-end tests.

It reads what it was sent from the SMTP server's record (:class:`MailServer`) and answers
into the MSP's mailbox (a Maildir, as the MSP's delivery agent would put it there), as a
person or as its ticketing system's automatic "case created" mail.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Sequence
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from ticketbridge.clock import utcnow

__all__ = ["MailVendor"]


class _Delivery(Protocol):
    @property
    def recipients(self) -> tuple[str, ...]: ...
    @property
    def raw(self) -> bytes: ...


class _Server(Protocol):
    """What the vendor reads its mail from: the SMTP server's record (``MailServer``)."""

    @property
    def received(self) -> Sequence[_Delivery]: ...


class MailVendor:
    def __init__(
        self,
        server: _Server,
        maildir: Path,
        *,
        support: str,
        us: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.server = server
        self.maildir = maildir
        self.support = support
        self.us = us
        self.clock = clock

    def received(self, address: str | None = None) -> list[EmailMessage]:
        """The mails the vendor's ``address`` (its support address by default) received."""
        wanted = (address or self.support).lower()
        return [
            message_from_bytes(r.raw, policy=policy.default)
            for r in self.server.received
            if wanted in (x.lower() for x in r.recipients)
        ]

    def answer(
        self,
        to: EmailMessage,
        text: str,
        *,
        sender: str | None = None,
        subject: str | None = None,
        automatic: bool = False,
    ) -> str:
        """Reply to ``to`` (threaded by In-Reply-To and References); its Message-ID."""
        msg = EmailMessage()
        domain = (sender or self.support).split("@")[-1]
        mid = make_msgid(domain=domain)
        msg["Message-ID"] = mid
        msg["Date"] = format_datetime(self.clock())
        msg["From"] = sender or self.support
        msg["To"] = self.us
        original = str(to["Subject"] or "")
        msg["Subject"] = subject or (
            original if original.lower().startswith("re:") else f"Re: {original}"
        )
        msg["In-Reply-To"] = str(to["Message-ID"])
        refs = str(to["References"] or "").split()
        msg["References"] = " ".join([*refs, str(to["Message-ID"])][-20:])
        if automatic:  # a ticketing system's own mail (RFC 3834)
            msg["Auto-Submitted"] = "auto-replied"
        msg.set_content(text)
        stored = mailbox.MaildirMessage(bytes(msg))
        stored.set_date(self.clock().timestamp())
        mailbox.Maildir(self.maildir, create=False).add(stored)
        return mid
