"""Adapters built from the configuration: one per system, each with its context (request
budget, retries, status classes).  Shared by the daemon, the CLI and the name check."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ticketbridge.adapters import adapter_class
from ticketbridge.adapters.base import AdapterContext, TicketAdapter
from ticketbridge.adapters.kit.budget import RequestBudget
from ticketbridge.adapters.kit.http import RetrySettings
from ticketbridge.clock import Clock, utcnow
from ticketbridge.config import TicketBridgeConfig

__all__ = ["build_adapters"]


def build_adapters(
    config: TicketBridgeConfig,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    clock: Clock | None = None,
) -> dict[str, TicketAdapter]:
    retry = RetrySettings(attempts=config.engine.http_attempts)
    adapters: dict[str, TicketAdapter] = {}
    for name, system in config.systems.items():
        cls = adapter_class(system.kind)
        quota = config.request_budget(name)
        ctx = AdapterContext(
            name=name,
            base_url=system.base_url,
            timeout=system.timeout,
            retry=retry,
            transport=(transports or {}).get(name),
            budget=RequestBudget(*quota) if quota is not None else None,
            status_classes=system.status_classes,
            priority_ranks=system.priority_ranks,
            clock=clock.now if clock is not None else utcnow,
        )
        adapters[name] = cls(ctx, config.adapter_settings(name))
    return adapters
