"""The e-mail product's defaults: the statuses a thread's state is read as, and their classes.

A mail thread has no status field: the adapter derives one from who wrote last and what
the vendor said (see ``thread.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ticketbridge.domain import StatusClass

__all__ = [
    "ACKNOWLEDGED",
    "DEFAULT_CASE_PATTERN",
    "DEFAULT_RESOLUTION_PHRASES",
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

#: A mail thread has no priority.
PRIORITY_RANKS: Mapping[str, int] = {}

DEFAULT_CASE_PATTERN = r"\b(?P<case>CS\d{5,})\b"

DEFAULT_RESOLUTION_PHRASES: tuple[str, ...] = (
    "has been resolved",
    "is now resolved",
    "we are closing this case",
    "this case is closed",
)
