"""Stateful simulators of the vendors' APIs, for demos, end-to-end tests and benchmarks.

* :mod:`ticketbridge.sandbox.connectwise`: ConnectWise PSA REST API 3.0.
* :mod:`ticketbridge.sandbox.servicenow`: ServiceNow Table API.
* :mod:`ticketbridge.sandbox.server`: run either over HTTP on loopback.

Each simulator is a FastAPI app built around a state object with an
injectable clock; ``/_sandbox/...`` endpoints inject faults, count requests,
switch webhooks and dump the state.
"""

from __future__ import annotations

from ticketbridge.sandbox._faults import FaultPlan, FaultRule, OutboundDispatcher, RequestLog
from ticketbridge.sandbox.connectwise import ConnectWiseState
from ticketbridge.sandbox.connectwise import create_app as create_connectwise_app
from ticketbridge.sandbox.server import SandboxServer, run_sandbox
from ticketbridge.sandbox.servicenow import ServiceNowState
from ticketbridge.sandbox.servicenow import create_app as create_servicenow_app

__all__ = [
    "ConnectWiseState",
    "FaultPlan",
    "FaultRule",
    "OutboundDispatcher",
    "RequestLog",
    "SandboxServer",
    "ServiceNowState",
    "create_connectwise_app",
    "create_servicenow_app",
    "run_sandbox",
]
