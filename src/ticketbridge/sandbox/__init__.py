"""The simulator framework: serving, fault injection, request logs, outbound webhooks.

Each product's simulator lives in its own folder (``adapters/<kind>/simulator.py``)
and is found through the product registry (``TicketAdapter.simulator``).  A
simulator is a FastAPI app built around a state object with an injectable
clock; ``/_sandbox/...`` endpoints inject faults, count requests, switch
webhooks and dump the state.
"""

from __future__ import annotations

from ticketbridge.sandbox._faults import FaultPlan, FaultRule, OutboundDispatcher, RequestLog
from ticketbridge.sandbox.server import SandboxServer, run_sandbox

__all__ = [
    "FaultPlan",
    "FaultRule",
    "OutboundDispatcher",
    "RequestLog",
    "SandboxServer",
    "run_sandbox",
]
