"""ConnectWise PSA (Manage): the PSA side.  See README.md in this folder."""

from __future__ import annotations

from ticketbridge.adapters.connectwise.adapter import ConnectWiseAdapter, ConnectWiseSettings

__all__ = ["ConnectWiseAdapter", "ConnectWiseSettings"]
