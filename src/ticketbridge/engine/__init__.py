"""The sync engine: polling, decisions, dispatch."""

from __future__ import annotations

from ticketbridge.engine.core import Engine, PollHealth

__all__ = ["Engine", "PollHealth"]
