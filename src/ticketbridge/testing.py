"""Seams tests install into the daemon; production never installs anything here.

:class:`Faults` is called by the dispatcher at named points of a write (today
``after_send``: the target has applied the write, ticketbridge has not recorded it yet).
The default does nothing.  A crash test installs its own hook with
:func:`install_faults` before it starts the daemon in the same process (see
``tests/e2e/crashing_daemon.py``), or passes one to ``Dispatcher(..., faults=...)``.
Nothing here reads the environment.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Faults", "NoFaults", "install_faults", "installed_faults"]


class Faults(Protocol):
    """A hook called at fault points; it may raise, stall or end the process."""

    def hit(self, point: str, operation: str) -> None:
        """Called when a write of ``operation`` reaches ``point``."""


class NoFaults:
    """The production hook: every point passes."""

    def hit(self, point: str, operation: str) -> None:
        """Do nothing."""


_installed: list[Faults] = [NoFaults()]


def install_faults(faults: Faults) -> None:
    """Make ``faults`` the hook of every dispatcher created from now on in this process."""
    _installed[0] = faults


def installed_faults() -> Faults:
    """The hook a dispatcher uses when none is passed to it."""
    return _installed[0]
