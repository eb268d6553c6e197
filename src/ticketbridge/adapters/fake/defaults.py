"""The fake product's defaults: its statuses are the class names themselves.

Matching ignores case, so ``New``, ``Resolved`` and ``Closed`` are classed too;
a ticket whose status is not in the map keeps the class it was given.
"""

from __future__ import annotations

from collections.abc import Mapping

from ticketbridge.adapters.base import ClosingTerms
from ticketbridge.domain import StatusClass

__all__ = ["CLOSING_TERMS", "FIELD_ALIASES", "PRIORITY_RANKS", "STATUS_CLASSES"]

STATUS_CLASSES: Mapping[str, StatusClass] = {
    **{cls.value: cls for cls in StatusClass},
    "In Progress": StatusClass.WORKING,
    "Canceled": StatusClass.CANCELLED,
}

PRIORITY_RANKS: Mapping[str, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}

FIELD_ALIASES: Mapping[str, str] = {}

CLOSING_TERMS = ClosingTerms(
    complete_note=(
        "{{ client_name }} has ended its service with {{ msp }}. Ticket {{ vendor_ticket }} "
        "is resolved on our side: please close it."
    ),
    cancel_note=(
        "{{ client_name }} has ended its service with {{ msp }}: we withdraw ticket "
        "{{ vendor_ticket }}, no further work is needed."
    ),
    complete_status="Resolved",
    cancel_status="Canceled",
)
