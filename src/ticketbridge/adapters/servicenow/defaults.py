"""ServiceNow defaults, as data: incident states as status classes, priority ranks.

The adapter reports a ticket's status as the state's display name; an incident
On Hold is classed by its ``hold_reason``: awaiting the caller (the MSP, which
raised the incident) is ``waiting_on_customer``, awaiting a problem, change or
the vendor's own supplier is ``waiting_on_third_party``.  Overrides go under
``systems.<name>.status_classes`` (keyed by state name, or by
``"On Hold/<hold reason>"`` for a hold reason).
"""

from __future__ import annotations

from collections.abc import Mapping

from ticketbridge.adapters.base import ClosingTerms
from ticketbridge.domain import StatusClass

__all__ = ["CLOSING_TERMS", "FIELD_ALIASES", "HOLD_CLASS_KEY", "PRIORITY_RANKS", "STATUS_CLASSES"]

#: The key a hold reason is classed under: ``"On Hold/Awaiting Caller"``.
HOLD_CLASS_KEY = "On Hold/{reason}"

STATUS_CLASSES: Mapping[str, StatusClass] = {
    "New": StatusClass.NEW,
    "In Progress": StatusClass.WORKING,
    "On Hold": StatusClass.WAITING_ON_THIRD_PARTY,
    "On Hold/Awaiting Caller": StatusClass.WAITING_ON_CUSTOMER,
    "On Hold/Awaiting Problem": StatusClass.WAITING_ON_THIRD_PARTY,
    "On Hold/Awaiting Vendor": StatusClass.WAITING_ON_THIRD_PARTY,
    "On Hold/Awaiting Change": StatusClass.WAITING_ON_THIRD_PARTY,
    "Resolved": StatusClass.RESOLVED,
    "Closed": StatusClass.CLOSED,
    "Canceled": StatusClass.CANCELLED,
}

#: Priority 1 (critical) .. 5 (planning): the rank is the number itself.
PRIORITY_RANKS: Mapping[str, int] = {str(n): n for n in range(1, 6)}

#: ServiceNow is a vendor side here: rules and routing never name its fields.
FIELD_ALIASES: Mapping[str, str] = {}

#: A client's incident at closeout: resolved when done, Canceled when withdrawn (the
#: caller's words, as the incident's comments show them to the vendor's agents).
CLOSING_TERMS = ClosingTerms(
    complete_note=(
        "{{ client_name }} has ended its service agreement with {{ msp }}. The issue in "
        "incident {{ vendor_ticket }} is resolved for us: please resolve and close the "
        "incident. Thank you for your help."
    ),
    cancel_note=(
        "{{ client_name }} has ended its service agreement with {{ msp }}, so we withdraw "
        "incident {{ vendor_ticket }}: please cancel it. No further work is needed."
    ),
    complete_status="Resolved",
    cancel_status="Canceled",
)
