"""ServiceNow (Table API): a vendor system.  See README.md in this folder."""

from __future__ import annotations

from ticketbridge.adapters.servicenow.adapter import ServiceNowAdapter, ServiceNowSettings

__all__ = ["ServiceNowAdapter", "ServiceNowSettings"]
