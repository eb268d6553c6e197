"""ConnectWise PSA defaults, as data: status classes, priority ranks, field words.

ConnectWise statuses are configured per board, so the map names the statuses
of a stock board set-up (and the ones our simulator seeds); an MSP with other
names adds them under ``systems.<name>.status_classes``.  ConnectWise's own
closed flag decides whether a ticket is done: a flagged status not in the map
(or mapped to a class that is not done) is ``closed``; an unflagged status not
in the map is ``working``, and one mapped to a done class counts as
``waiting_on_customer`` (resolved, awaiting the client's confirmation).

A ConnectWise board is this PSA's queue, its team the group and its owner the
assignee: administrators may write ``board``, ``team`` and ``owner`` in routing
and rules wherever the neutral ``queue``, ``group`` and ``assignee`` go.
"""

from __future__ import annotations

from collections.abc import Mapping

from ticketbridge.adapters.base import ClosingTerms
from ticketbridge.domain import StatusClass

__all__ = ["CLOSING_TERMS", "FIELD_ALIASES", "PRIORITY_RANKS", "STATUS_CLASSES"]

STATUS_CLASSES: Mapping[str, StatusClass] = {
    "New": StatusClass.NEW,
    "New (Portal)": StatusClass.NEW,
    "New (Email connector)": StatusClass.NEW,
    "Assigned": StatusClass.WORKING,
    "In Progress": StatusClass.WORKING,
    "Scheduled": StatusClass.WORKING,
    "Escalated": StatusClass.WORKING,
    "Re-opened": StatusClass.WORKING,
    "Waiting on Client": StatusClass.WAITING_ON_CUSTOMER,
    "Waiting Customer": StatusClass.WAITING_ON_CUSTOMER,
    "Customer Updated": StatusClass.WORKING,
    "Waiting on Vendor": StatusClass.WAITING_ON_THIRD_PARTY,
    "Waiting Vendor": StatusClass.WAITING_ON_THIRD_PARTY,
    "Vendor Resolved - Verify with Client": StatusClass.WAITING_ON_CUSTOMER,
    "Completed": StatusClass.CLOSED,
    "Closed": StatusClass.CLOSED,
    "Cancelled": StatusClass.CANCELLED,
    "Canceled": StatusClass.CANCELLED,
}

PRIORITY_RANKS: Mapping[str, int] = {
    "Priority 1 - Emergency Response": 1,
    "Priority 2 - Quick Response": 2,
    "Priority 3 - Normal Response": 3,
    "Priority 4 - Low": 4,
}

FIELD_ALIASES: Mapping[str, str] = {
    "board": "queue",
    "boards": "queues",
    "watch_boards": "watch_queues",
    "team": "group",
    "owner": "assignee",
}

#: Should this PSA be the vendor side of a connection: its stock closed statuses.
CLOSING_TERMS = ClosingTerms(
    complete_note=(
        "{{ client_name }} has ended its service with {{ msp }}. Ticket {{ vendor_ticket }} "
        "is resolved for us: please complete it."
    ),
    cancel_note=(
        "{{ client_name }} has ended its service with {{ msp }}: we withdraw ticket "
        "{{ vendor_ticket }}, please cancel it."
    ),
    complete_status="Completed",
    cancel_status="Cancelled",
)
