"""One wake-up call heard by several loops, each clearing only its own flag."""

from __future__ import annotations

import asyncio

__all__ = ["Wake"]


class Wake:
    """``set()`` wakes every listener; each loop waits on and clears its own event.

    The webhook-hint loop and the write pool run side by side: with one shared
    ``asyncio.Event`` the first to clear it would swallow the other's wake-up.
    """

    def __init__(self) -> None:
        self._listeners: list[asyncio.Event] = []

    def listener(self) -> asyncio.Event:
        """A new event set by every later ``set()``."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def set(self) -> None:
        for event in self._listeners:
            event.set()

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._listeners)
