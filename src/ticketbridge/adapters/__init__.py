"""The product registry: adapter kind -> adapter class.

One registry: every product, built in or shipped by a third party, is an entry
point in the group ``ticketbridge.adapters`` (ours are declared in
``pyproject.toml``).  The CLI, ``demo``, ``sandbox`` and the contract suite all
iterate :func:`adapter_kinds`.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ticketbridge.adapters.base import (
    AdapterContext,
    AdapterSettings,
    Capability,
    TicketAdapter,
)

__all__ = [
    "AdapterContext",
    "AdapterSettings",
    "Capability",
    "TicketAdapter",
    "adapter_class",
    "adapter_kinds",
    "field_aliases",
    "simulator_app",
]

GROUP = "ticketbridge.adapters"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise RuntimeError(
                f"two installed packages register the adapter kind {ep.name!r} "
                f"({other.value} and {ep.value}); uninstall one of them"
            )
        found[ep.name] = ep
    if not found:
        raise RuntimeError(
            "no adapters are registered: ticketbridge is not installed as a package "
            "(install it with `pip install -e .` or ./scripts/demo)"
        )
    return found


def adapter_kinds() -> list[str]:
    """Every registered product kind, sorted."""
    return sorted(_entry_points())


@cache
def adapter_class(kind: str) -> type[TicketAdapter]:
    """The adapter class for ``kind``; ``KeyError`` if no such adapter is installed."""
    ep = _entry_points()[kind]
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, TicketAdapter)):
        raise TypeError(f"entry point {ep.value} is not a TicketAdapter")
    if cls.kind != kind:
        raise TypeError(f"entry point {kind!r} loads {ep.value}, whose kind is {cls.kind!r}")
    return cls


def simulator_app(kind: str) -> Any | None:
    """A fresh app of ``kind``'s simulator (default credentials and seed data), if it has one."""
    target = adapter_class(kind).simulator
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    factory = getattr(import_module(module_name), attr)
    return factory()


@cache
def field_aliases() -> dict[str, str]:
    """Every registered product's own words for neutral ticket fields, merged.

    The core reads these to accept, say, a PSA's word for its queue wherever the
    neutral word goes.  Two products giving one word different meanings is an
    installation error.
    """
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    for kind in adapter_kinds():
        for word, neutral in adapter_class(kind).field_aliases.items():
            if merged.get(word, neutral) != neutral:
                raise RuntimeError(
                    f"adapters {owners[word]!r} and {kind!r} both define the field word "
                    f"{word!r}, as {merged[word]!r} and {neutral!r}"
                )
            merged[word] = neutral
            owners.setdefault(word, kind)
    return merged
