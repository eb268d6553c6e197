"""The people around an e-mail vendor, for the contract suite.

No simulator: a real SMTP server on loopback (:class:`MailServer`, aiosmtpd) takes what
the adapter sends -- recording what the vendor receives and delivering our own copy into
the MSP's Maildir -- and the adapter reads that Maildir.  An engineer writing to the
vendor by hand, the vendor answering, and an internal memo kept in the mailbox are
files put into that Maildir at the driver's clock.
"""

from __future__ import annotations

import mailbox
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, ClassVar

from starlette.types import ASGIApp

from ticketbridge.adapters.base import Capability
from ticketbridge.adapters.email.mailserver import MailServer
from ticketbridge.domain import FieldChange, Ticket, Visibility
from ticketbridge.sandbox.driver import SimulatorDriver, StoredNote

__all__ = ["EmailDriver"]

US = "servicedesk@msp.example"
VENDOR = "support@vendor.example"
PASSWORD = "mail-test-password"  # noqa: S105 - a test credential
_LOST = "a mailbox listing is one read of the folder, not pages"


class EmailDriver(SimulatorDriver):
    kind = "email"
    #: Every mail handed to the SMTP server is one "POST smtp:DATA" in :meth:`requests`.
    note_write = ("POST", r"^smtp:DATA$")
    create_write = ("POST", r"^smtp:DATA$")
    update_write = ("POST", r"^smtp:DATA$")
    not_applicable: ClassVar[Mapping[str, str]] = {
        "test_a_record_changed_during_paging_is_not_skipped": _LOST,
        "test_a_2xx_that_proves_nothing_leaves_the_note_once": (
            "SMTP has no 2xx bodies to prove a write; a lost answer after DATA is "
            "test_an_uncertain_note_write_is_found_by_key_and_not_repeated"
        ),
        "test_an_ignored_public_note_write_is_refused_naming_the_field": (
            "a mail has no visibility field to drop: only public notes are mailed"
        ),
        "test_an_ignored_field_write_is_refused_naming_the_field": (
            "an escalation is a mail: it has no field a server could drop"
        ),
        "test_429_retry_after_is_honoured": "SMTP and IMAP have no Retry-After",
        "test_a_long_retry_after_on_a_write_is_handed_back_not_slept": (
            "SMTP and IMAP have no Retry-After (a 4xx reply is a TransientError)"
        ),
        "test_the_request_budget_is_never_exceeded": "no HTTP requests to pace",
    }

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(clock=clock)
        self._dir: Path | None = None
        self.server: MailServer | None = None
        #: Received mails before this index were cleared from the request log.
        self._cleared = 0

    def create_app(self) -> ASGIApp:
        raise RuntimeError("an e-mail vendor has no HTTP simulator: real mail servers play it")

    @property
    def maildir(self) -> Path:
        assert self._dir is not None, "the driver is not started"
        return self._dir / "Maildir"

    def start(self) -> str:
        if self.server is None:
            self._dir = Path(tempfile.mkdtemp(prefix="tb-mail-"))
            mailbox.Maildir(self.maildir, create=True)
            self.server = MailServer(
                maildirs={US: self.maildir}, credentials=(US, PASSWORD), clock=self.clock
            ).start()
        return self.url

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def close_actors(self) -> None:
        return None

    @property
    def url(self) -> str:
        assert self.server is not None, "the driver is not started"
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def base_url(self) -> str:
        return "https://support.vendor.example"

    def settings(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        assert self.server is not None
        return {
            "smtp": {
                "host": self.server.host,
                "port": self.server.port,
                "security": "none",
                "username": US,
                "password": PASSWORD if valid_credentials else "wrong",
                "from_address": US,
                "timeout": 5,
            },
            "vendor": {"support_address": VENDOR},
            "inbound": {"maildir": str(self.maildir)},
            "history_days": 3650,
        }

    # -- people -------------------------------------------------------------------------
    def _put(self, folder: str | None, msg: EmailMessage) -> None:
        box = mailbox.Maildir(self.maildir, create=True)
        if folder is not None:
            box = box.get_folder(folder) if folder in box.list_folders() else box.add_folder(folder)
        message = mailbox.MaildirMessage(bytes(msg))
        message.set_date(self.clock().timestamp())
        box.add(message)

    def _mail(self, sender: str, to: str | None, subject: str, text: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
        msg["Date"] = format_datetime(self.clock())
        msg["From"] = sender
        if to is not None:
            msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        return msg

    async def open_ticket(self, summary: str) -> str:
        """An engineer mails the vendor by hand with a tag; the vendor opens a case."""
        tid = secrets.token_hex(5)
        self._put("Sent", self._mail(US, VENDOR, f"[TB-{tid}] {summary}", summary))
        case = f"CS{secrets.randbelow(10**7):07d}"
        text = f"Your case {case} has been created."
        self._put(None, self._mail(VENDOR, US, f"Re: [TB-{tid}] {summary}", text))
        return tid

    def sample_changes(self, ticket: Ticket) -> Mapping[str, FieldChange]:
        """Escalations: a new priority, a field (``escalation``)."""
        priority = "high" if ticket.priority == "urgent" else "urgent"
        return {
            Capability.SET_PRIORITY.value: FieldChange(priority=priority),
            Capability.SET_FIELDS.value: FieldChange(fields={"escalation": "2"}),
        }

    async def find_created(self, key: str) -> str | None:
        for got in self._vendor_mails():
            if got["X-Ticketbridge-Key"] == key and got["X-Ticketbridge-Op"] == "create":
                found = re.search(r"\[TB-([A-Za-z0-9]+)\]", str(got["Subject"]))
                return found.group(1) if found else None
        return None

    async def touch(self, ticket_id: str) -> None:
        self._put(None, self._mail(VENDOR, US, f"Re: [TB-{ticket_id}] update", "Still on it."))

    async def add_note(self, ticket_id: str, text: str, visibility: Visibility) -> None:
        if visibility is Visibility.PUBLIC:  # the vendor answers
            self._put(None, self._mail(VENDOR, US, f"Re: [TB-{ticket_id}]", text))
        else:  # an engineer's memo kept in the mailbox, sent to nobody
            self._put("Sent", self._mail(US, None, f"[TB-{ticket_id}] memo", text))

    def _vendor_mails(self) -> Iterable[Any]:
        assert self.server is not None
        for got in self.server.received:
            if VENDOR in got.recipients:
                yield message_from_bytes(got.raw, policy=policy.default)

    async def notes(self, ticket_id: str) -> list[StoredNote]:
        """What the vendor received (public) and what the mailbox keeps unsent (internal)."""
        tag = f"[TB-{ticket_id}]"
        out: list[StoredNote] = []
        for got in self._vendor_mails():
            if tag in str(got["Subject"]) and got["X-Ticketbridge-Op"] != "create":
                out.append(StoredNote(_body(got), Visibility.PUBLIC))
        root = mailbox.Maildir(self.maildir, create=True)
        boxes = [root] + [root.get_folder(f) for f in root.list_folders()]
        for box in boxes:
            for message in box:
                got = message_from_bytes(message.as_bytes(), policy=policy.default)
                if tag not in str(got["Subject"]) or got["X-Ticketbridge-Key"]:
                    if got["X-Ticketbridge-Visibility"] == "internal" and tag in str(
                        got["Subject"]
                    ):
                        out.append(StoredNote(_body(got), Visibility.INTERNAL))
                    continue
                if got["From"] == VENDOR:
                    out.append(StoredNote(_body(got), Visibility.PUBLIC))
                elif got["To"] is None:
                    out.append(StoredNote(_body(got), Visibility.INTERNAL))
        return out

    # -- "requests": the mails handed to the SMTP server ----------------------------------------
    async def add_faults(self, rules: Iterable[Mapping[str, Any]]) -> None:
        assert self.server is not None
        for rule in rules:
            if rule.get("action") != "apply_then_fail":
                raise NotImplementedError(f"no mail equivalent of the fault {dict(rule)}")
            self.server.fail_after_data()

    async def clear_faults(self) -> None:
        assert self.server is not None
        self.server.handler.faults.clear()

    async def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        assert self.server is not None
        if method not in (None, "POST"):
            return []
        return [
            {"method": "POST", "path": "smtp:DATA", "query": "", "status": 250, "fault": r.fault}
            for r in self.server.received[self._cleared :]
        ]

    async def clear_requests(self) -> None:
        assert self.server is not None
        self._cleared = len(self.server.received)


def _body(msg: Any) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return "" if part is None else str(part.get_content()).strip()
