"""Request Tracker's defaults: the statuses of RT's default lifecycle and priority ranks.

RT's default lifecycle has ``new`` (initial), ``open`` and ``stalled`` (active) and
``resolved``, ``rejected`` and ``deleted`` (inactive).  ``stalled`` is RT's "waiting"
status, which vendors use while they wait on the requester.  Queues may use another
lifecycle: map its statuses with ``systems.<name>.status_classes``.

Priorities are numbers (0-99 by default; RT shows them as Low/Medium/High by
``%PriorityAsString``).  The ranks below are RT's named buckets; a number that is not a
key here is ranked by :func:`rank_of_number`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ticketbridge.adapters.base import ClosingTerms
from ticketbridge.domain import StatusClass

__all__ = [
    "CLOSING_TERMS",
    "FIELD_ALIASES",
    "PRIORITY_RANKS",
    "STATUSES",
    "STATUS_CLASSES",
    "rank_of_number",
]

STATUSES = ("new", "open", "stalled", "resolved", "rejected", "deleted")

STATUS_CLASSES: Mapping[str, StatusClass] = {
    "new": StatusClass.NEW,
    "open": StatusClass.WORKING,
    "stalled": StatusClass.WAITING_ON_CUSTOMER,
    "resolved": StatusClass.RESOLVED,
    "rejected": StatusClass.RESOLVED,
    "deleted": StatusClass.CANCELLED,
}

PRIORITY_RANKS: Mapping[str, int] = {"High": 1, "Medium": 3, "Low": 5}

#: RT calls the queue a queue and the assignee the owner.
FIELD_ALIASES: Mapping[str, str] = {"owner": "assignee"}


def rank_of_number(priority: int) -> int:
    """A rank (1 most urgent .. 5) for an RT priority number (higher is more urgent)."""
    if priority >= 80:
        return 1
    if priority >= 60:
        return 2
    if priority >= 40:
        return 3
    if priority >= 20:
        return 4
    return 5


#: RT's default lifecycle: ``resolved`` completes a ticket, ``rejected`` withdraws it.
CLOSING_TERMS = ClosingTerms(
    complete_note=(
        "{{ client_name }} has ended its service with {{ msp }}. The issue in RT ticket "
        "#{{ vendor_ticket }} is resolved for us; we are resolving the ticket."
    ),
    cancel_note=(
        "{{ client_name }} has ended its service with {{ msp }}, so we withdraw RT ticket "
        "#{{ vendor_ticket }} and are rejecting it. No further work is needed."
    ),
    complete_status="resolved",
    cancel_status="rejected",
)
