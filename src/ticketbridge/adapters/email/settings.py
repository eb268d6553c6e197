"""The settings of one e-mail vendor (``systems.<name>.settings`` with ``kind: email``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ticketbridge.adapters.base import AdapterSettings
from ticketbridge.adapters.email.defaults import DEFAULT_CASE_PATTERN, DEFAULT_RESOLUTION_PHRASES

__all__ = ["EmailSettings", "ImapSettings", "MaildirSettings", "SmtpBlock", "VendorSettings"]

Security = Literal["starttls", "tls", "none"]
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (write local@domain)")
    return value.lower()


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class SmtpBlock(_Block):
    """Where outbound mail is submitted."""

    host: str = Field(min_length=1)
    #: 587 with starttls, 465 with tls, 25 for a local relay.
    port: int = Field(default=587, ge=1, le=65535)
    security: Security = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    #: The mailbox the vendor answers to (also the Reply-To).
    from_address: str
    timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        return _address(value)

    @model_validator(mode="after")
    def _pair(self) -> SmtpBlock:
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp.username and smtp.password go together: set both or neither")
        return self


class VendorSettings(_Block):
    """Who is written to at the vendor."""

    support_address: str
    #: Where escalations go (rules setting the vendor's priority or a field such as
    #: ``escalation``); the support address when not set.
    escalation_address: str | None = None
    #: Copied on every escalation (the vendor's account or service delivery manager).
    account_manager: str | None = None
    cc: tuple[str, ...] = ()

    @field_validator("support_address")
    @classmethod
    def _support(cls, value: str) -> str:
        return _address(value)

    @field_validator("escalation_address", "account_manager")
    @classmethod
    def _escalation(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("cc")
    @classmethod
    def _cc(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(v) for v in value)


class ImapSettings(_Block):
    """The mailbox the vendor's answers land in (a mailbox per vendor or a shared one)."""

    host: str = Field(min_length=1)
    #: 143 with starttls or none, 993 with tls.
    port: int = Field(default=993, ge=1, le=65535)
    security: Security = "tls"
    username: str = Field(min_length=1)
    password: SecretStr
    folder: str = "INBOX"
    #: Where a copy of every mail ticketbridge sends is kept (IMAP APPEND).
    sent_folder: str = "Sent"
    #: Wait for new mail with IMAP IDLE when the server offers it (else poll).
    idle: bool = True
    timeout: float = Field(default=30.0, gt=0, le=600)


class MaildirSettings(_Block):
    """A local Maildir as the mailbox (the demo's built-in mail server delivers there)."""

    maildir: str = Field(min_length=1)
    #: The Maildir++ sub-folder holding the copies of sent mail.
    sent_folder: str = "Sent"


class EmailSettings(AdapterSettings):
    smtp: SmtpBlock
    vendor: VendorSettings
    #: Inbound: ``imap: {...}`` or ``inbound: {maildir: path}``; exactly one.
    imap: ImapSettings | None = None
    inbound: MaildirSettings | None = None
    #: The ticket tag in subjects; ``{id}`` is replaced by the thread's id.
    subject_tag: str = "[TB-{id}]"
    #: The vendor's case number in its mails (a named group ``case``, else group 1).
    case_pattern: str = DEFAULT_CASE_PATTERN
    resolution_phrases: tuple[str, ...] = DEFAULT_RESOLUTION_PHRASES
    #: What acknowledges a case: the vendor's first human reply, or its case-number mail.
    acknowledgment: Literal["first_reply", "case_number"] = "first_reply"
    attachment_cap_mb: float = Field(default=10.0, gt=0, le=100)
    #: The right-hand side of our Message-IDs (own mail coming back is recognised by it).
    id_domain: str = Field(default="ticketbridge.invalid", min_length=3)
    #: How far back the mailbox is read to thread mails (IMAP SINCE, whole days).
    history_days: int = Field(default=90, ge=1, le=3650)
    #: Send each mail's copy to our own mailbox in the same SMTP transaction (envelope Bcc),
    #: so a mail whose answer was lost is found by key when it was delivered.
    copy_to_mailbox: bool = True
    #: Mails listed per page (the listing itself is built from the mailbox in one read).
    page_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("subject_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if value.count("{id}") != 1:
            raise ValueError("subject_tag must contain {id} exactly once, e.g. '[TB-{id}]'")
        return value

    @field_validator("case_pattern")
    @classmethod
    def _case(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"case_pattern is not a regular expression: {exc}") from None
        return value

    @field_validator("id_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z0-9-]+", value):
            raise ValueError("id_domain must be a domain name you own, e.g. 'tb.msp.example'")
        return value.lower()

    @model_validator(mode="after")
    def _one_inbound(self) -> EmailSettings:
        if (self.imap is None) == (self.inbound is None):
            raise ValueError(
                "set exactly one inbound mailbox: imap: {host, username, password, ...} "
                "or inbound: {maildir: /path/to/Maildir}"
            )
        return self

    def tag_regex(self) -> re.Pattern[str]:
        before, _, after = self.subject_tag.partition("{id}")
        return re.compile(re.escape(before) + r"([A-Za-z0-9]+)" + re.escape(after))

    def case_regex(self) -> re.Pattern[str]:
        return re.compile(self.case_pattern)

    def tag(self, thread_id: str) -> str:
        return self.subject_tag.replace("{id}", thread_id)

    @property
    def attachment_cap(self) -> int:
        return int(self.attachment_cap_mb * 1024 * 1024)
