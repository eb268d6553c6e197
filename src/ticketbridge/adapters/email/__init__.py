"""A vendor reached only by e-mail (SMTP out, IMAP or a Maildir in).  See README.md."""

from __future__ import annotations

from ticketbridge.adapters.email.adapter import EmailAdapter
from ticketbridge.adapters.email.settings import EmailSettings

__all__ = ["EmailAdapter", "EmailSettings"]
