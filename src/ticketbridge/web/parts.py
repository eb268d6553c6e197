"""The running daemon's parts that the web apps serve from (the public webhook app and the
admin dashboard each add what only they read)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.config import TicketBridgeConfig
from ticketbridge.engine import Engine
from ticketbridge.health import HealthRegistry
from ticketbridge.metrics import Metrics
from ticketbridge.store import Store

__all__ = ["DaemonParts"]


class DaemonParts(Protocol):
    @property
    def config(self) -> TicketBridgeConfig: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def store(self) -> Store: ...
    @property
    def adapters(self) -> Mapping[str, TicketAdapter]: ...
    @property
    def health(self) -> HealthRegistry: ...
