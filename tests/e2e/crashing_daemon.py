"""Test-only launcher: the normal ``ticketbridge`` CLI with a crash hook installed.

Run as ``python tests/e2e/crashing_daemon.py POINT:OPERATION[:N] run --config FILE``:
the process kills itself with SIGKILL when the N-th (default first) write of OPERATION
reaches POINT (``after_send``: the target applied it, ticketbridge has not recorded it).
Everything after the fault spec is handed to the CLI unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

from ticketbridge.cli import main
from ticketbridge.testing import install_faults


@dataclass
class KillAt:
    """Kill this process with SIGKILL at the ``nth`` write of ``operation`` at ``point``."""

    point: str
    operation: str | None = None
    nth: int = 1
    seen: int = 0

    @classmethod
    def parse(cls, spec: str) -> KillAt:
        """``after_send:add_note:2`` -> point, operation (empty: any) and count."""
        point, _, rest = spec.partition(":")
        operation, _, nth = rest.partition(":")
        return cls(point, operation or None, int(nth) if nth else 1)

    def hit(self, point: str, operation: str) -> None:
        if point != self.point or self.operation not in (None, operation):
            return
        self.seen += 1
        if self.seen == self.nth:
            print(f"fault injected: kill -9 at {point}:{operation}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    install_faults(KillAt.parse(sys.argv[1]))
    sys.argv = ["ticketbridge", *sys.argv[2:]]
    main()
