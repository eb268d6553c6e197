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

from ticketbridge.domain import StatusClass

__all__ = ["FIELD_ALIASES", "HOLD_CLASS_KEY", "PRIORITY_RANKS", "STATUS_CLASSES"]

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
