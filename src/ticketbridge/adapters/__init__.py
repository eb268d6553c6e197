"""Adapter registry: adapter kind -> class, from built-ins and the ``ticketbridge.adapters``
entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from ticketbridge.adapters.base import AdapterContext, AdapterSettings, TicketAdapter

__all__ = ["AdapterContext", "AdapterSettings", "TicketAdapter", "adapter_class", "adapter_kinds"]

_BUILTIN = {
    "connectwise": "ticketbridge.adapters.connectwise:ConnectWiseAdapter",
    "servicenow": "ticketbridge.adapters.servicenow:ServiceNowAdapter",
    "fake": "ticketbridge.adapters.fake:FakeAdapter",
}


def _load(target: str) -> type[TicketAdapter]:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, TicketAdapter)):
        raise TypeError(f"{target} is not a TicketAdapter")
    return cls


def adapter_kinds() -> list[str]:
    kinds = set(_BUILTIN)
    kinds.update(ep.name for ep in entry_points(group="ticketbridge.adapters"))
    return sorted(kinds)


def adapter_class(kind: str) -> type[TicketAdapter]:
    """The adapter class for ``kind``; ``KeyError`` if no such adapter is installed."""
    if kind in _BUILTIN:
        return _load(_BUILTIN[kind])
    for ep in entry_points(group="ticketbridge.adapters"):
        if ep.name == kind:
            cls = ep.load()
            if isinstance(cls, type) and issubclass(cls, TicketAdapter):
                return cls
            raise TypeError(f"entry point {ep.value} is not a TicketAdapter")
    raise KeyError(kind)
