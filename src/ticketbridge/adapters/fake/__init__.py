"""The fake product: the minimal worked example of a product folder.  See README.md."""

from __future__ import annotations

from ticketbridge.adapters.fake.adapter import FakeAdapter, FakeSettings
from ticketbridge.adapters.fake.simulator import FakeWorld

__all__ = ["FakeAdapter", "FakeSettings", "FakeWorld"]
