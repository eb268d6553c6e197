"""Request Tracker 5 (REST2) as a vendor system."""

from __future__ import annotations

from ticketbridge.adapters.rt.adapter import RtAdapter, RtSettings

__all__ = ["RtAdapter", "RtSettings"]
