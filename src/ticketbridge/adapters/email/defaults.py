"""The e-mail product's defaults: the statuses a thread's state is read as, and their classes.

A mail thread has no status field: the adapter derives one from who wrote last and what
the vendor said (see ``thread.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ticketbridge.adapters.base import ClosingTerms
from ticketbridge.domain import StatusClass

__all__ = [
    "ACKNOWLEDGED",
    "CLOSING_TERMS",
    "DEFAULT_CASE_PATTERN",
    "DEFAULT_RESOLUTION_PHRASES",
    "MAIL_PRIORITY",
    "PRIORITY_RANKS",
    "RESOLVED",
    "SENT",
    "STATUS_CLASSES",
    "WAITING_ON_US",
    "WAITING_ON_VENDOR",
]

#: We wrote; the vendor has not answered anything yet.
SENT = "sent"
#: The vendor acknowledged (its case-number mail or a first human reply) and wrote last.
ACKNOWLEDGED = "acknowledged"
#: The vendor wrote last and asked something: the ball is in our court.
WAITING_ON_US = "waiting on us"
#: We wrote last after the vendor's acknowledgment: the vendor's turn.
WAITING_ON_VENDOR = "waiting on vendor"
#: The vendor's last human mail says one of the resolution phrases.
RESOLVED = "resolved"

STATUS_CLASSES: Mapping[str, StatusClass] = {
    SENT: StatusClass.NEW,
    ACKNOWLEDGED: StatusClass.WORKING,
    WAITING_ON_VENDOR: StatusClass.WORKING,
    WAITING_ON_US: StatusClass.WAITING_ON_CUSTOMER,
    RESOLVED: StatusClass.RESOLVED,
}

#: The urgency we state when opening a case (header ``X-Ticketbridge-Priority``, and the
#: ``X-Priority``/``Importance`` mail clients show); a thread keeps the one it was opened with.
PRIORITY_RANKS: Mapping[str, int] = {"urgent": 1, "high": 2, "normal": 3, "low": 4}

#: ``X-Priority`` (1 highest .. 5 lowest) and ``Importance`` for each priority.
MAIL_PRIORITY: Mapping[str, tuple[str, str]] = {
    "urgent": ("1 (Highest)", "high"),
    "high": ("2 (High)", "high"),
    "normal": ("3 (Normal)", "normal"),
    "low": ("5 (Lowest)", "low"),
}

DEFAULT_CASE_PATTERN = r"\b(?P<case>CS\d{5,})\b"

DEFAULT_RESOLUTION_PHRASES: tuple[str, ...] = (
    "has been resolved",
    "is now resolved",
    "we are closing this case",
    "this case is closed",
)

#: A mail thread has no status to set: the closing mail asks the vendor's desk to close the
#: case, and its answer saying so (a resolution phrase) is the confirmation.
CLOSING_TERMS = ClosingTerms(
    complete_note=(
        "Hello,\n\n{{ client_name }} has ended its service with {{ msp }}. The issue in "
        "case {{ vendor_ticket }} ({{ summary }}) is resolved for us: please close the case "
        "and confirm by reply.\n\nThank you."
    ),
    cancel_note=(
        "Hello,\n\n{{ client_name }} has ended its service with {{ msp }}, so we withdraw "
        "case {{ vendor_ticket }} ({{ summary }}): no further work is needed. Please close "
        "the case and confirm by reply.\n\nThank you."
    ),
)
