"""A commented starter configuration for any PSA and vendor pair that is installed.

Each product folder ships an ``example.yaml`` beside its adapter: the text of its
``systems.<name>`` entry (comments and all), what it brings to a connection as the PSA
(routing, the PSA status to set per status class of the vendor ticket, an example client)
or as the vendor (the account fields).  This module knows no product: it joins two such
fragments and derives what depends on both from the products' declared data — the status
map from the vendor's statuses and their classes, the priority map by priority rank, an SLA
contract on the vendor's two most urgent priorities.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import yaml

from ticketbridge import __version__
from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.domain import Side, StatusClass

__all__ = [
    "EXAMPLE_FILE",
    "ExampleError",
    "ProductExample",
    "kinds_for",
    "product_example",
    "render_example",
    "secret_names",
]

#: The file each product folder ships (package data beside its adapter module).
EXAMPLE_FILE = "example.yaml"
_ENV_REF = re.compile(r"\{\s*env\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class ExampleError(ValueError):
    """No example can be written: an unknown kind, a product on the wrong side, a folder
    without ``example.yaml`` or with a broken one."""


@dataclass(frozen=True)
class ProductExample:
    """One product folder's ``example.yaml``, read."""

    kind: str
    system: str
    psa: dict[str, Any] | None
    vendor: dict[str, Any] | None


def kinds_for(side: Side) -> list[str]:
    """The registered kinds that can be ``side`` of a connection."""
    return [kind for kind in adapter_kinds() if side in adapter_class(kind).sides]


def _package_of(cls: type[TicketAdapter]) -> str:
    module = sys.modules[cls.__module__]
    return module.__package__ or cls.__module__.rpartition(".")[0]


def product_example(kind: str) -> ProductExample:
    """The example fragment of ``kind``'s product folder."""
    cls = adapter_class(kind)
    package = _package_of(cls)
    try:
        text = files(package).joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise ExampleError(
            f"the {cls.display_name} product folder ({package}) has no {EXAMPLE_FILE}; "
            "add one beside its adapter (see docs/adapters/writing-an-adapter.md)"
        ) from None
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("system"), str):
        raise ExampleError(f"{package}/{EXAMPLE_FILE} must hold `system: |` with YAML text")
    return ProductExample(kind, data["system"], data.get("psa"), data.get("vendor"))


def secret_names(text: str) -> list[str]:
    """The environment variables a configuration text reads (``{env: NAME}``), in order."""
    return list(dict.fromkeys(_ENV_REF.findall(text)))


def _check_side(kind: str, side: Side) -> type[TicketAdapter]:
    known = adapter_kinds()
    if kind not in known:
        raise ExampleError(f"unknown product {kind!r}; installed: {', '.join(known)}")
    cls = adapter_class(kind)
    if side not in cls.sides:
        fits = ", ".join(kinds_for(side)) or "(none)"
        raise ExampleError(
            f"{kind} ({cls.display_name}) cannot be the {side}; the {side} is one of: {fits}"
        )
    return cls


def _system_key(kind: str, other: str, side: Side) -> str:
    return kind if kind != other else f"{kind}-{side}"


def _vendor_statuses(cls: type[TicketAdapter]) -> list[str]:
    return list(cls.known_statuses or cls.status_classes)


def _class_of(cls: type[TicketAdapter], status: str) -> StatusClass | None:
    folded = {key.casefold(): value for key, value in cls.status_classes.items()}
    return folded.get(status.casefold())


def _by_rank(ranks: dict[str, int], known: tuple[str, ...] | None) -> list[tuple[str, int]]:
    pairs = [(name, rank) for name, rank in ranks.items() if known is None or name in known]
    return sorted(pairs, key=lambda pair: (pair[1], pair[0]))


def _nearest(rank: int, choices: list[tuple[str, int]]) -> str:
    """The choice of the nearest rank; between two as near, the more urgent."""
    return min(choices, key=lambda pair: (abs(pair[1] - rank), pair[1]))[0]


def _q(value: str) -> str:
    """``value`` as a YAML scalar (quoted when YAML would read it otherwise)."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return dumped.removesuffix("\n...").strip()


def _block(text: str, indent: int) -> str:
    return textwrap.indent(text.strip("\n"), " " * indent)


def render_example(psa_kind: str, vendor_kind: str) -> str:
    """A commented ``ticketbridge.yaml`` pairing ``psa_kind`` with ``vendor_kind``."""
    psa_cls = _check_side(psa_kind, Side.PSA)
    vendor_cls = _check_side(vendor_kind, Side.VENDOR)
    psa = product_example(psa_kind)
    vendor = product_example(vendor_kind)
    if psa.psa is None:
        raise ExampleError(f"{psa_kind}'s {EXAMPLE_FILE} has no `psa:` section")
    if vendor.vendor is None:
        raise ExampleError(f"{vendor_kind}'s {EXAMPLE_FILE} has no `vendor:` section")
    psa_key = _system_key(psa_kind, vendor_kind, Side.PSA)
    vendor_key = _system_key(vendor_kind, psa_kind, Side.VENDOR)
    client = str(psa.psa.get("client", "ACME"))
    status_for_class: dict[str, str] = psa.psa.get("status_for_class") or {}

    lines: list[str] = []
    add = lines.append
    systems = psa.system + vendor.system
    add(
        f"# ticketbridge {__version__}: {psa_cls.display_name} (PSA) with "
        f"{vendor_cls.display_name} (vendor)."
    )
    add(f"# Written by `ticketbridge config example --psa {psa_kind} --vendor {vendor_kind}`;")
    add("# edit the names and addresses, then check it:")
    add("#   ticketbridge check-config ticketbridge.yaml          (add --online to log in)")
    names = secret_names(systems)
    if names:
        add("# Secrets are read from the environment (NAME_FILE pointing at a file works too):")
        add("#   " + " ".join(f"{name}=..." for name in names))
    add("# Every setting is described in the configuration reference; editors complete it from")
    add("# `ticketbridge config schema` (a JSON Schema).")
    add("")
    add("store:")
    add("  # SQLite needs nothing installed (one daemon per file); replicas share PostgreSQL:")
    add("  # url: postgresql+psycopg://ticketbridge@db.internal:5432/ticketbridge")
    add("  url: sqlite:////var/lib/ticketbridge/ticketbridge.db")
    add("")
    add("server:")
    add("  host: 0.0.0.0     # webhooks, /healthz, /readyz and /metrics listen here")
    add("  port: 8080")
    add("")
    add("systems:")
    add(f"  {psa_key}:")
    add(_block(psa.system, 4))
    add(f"  {vendor_key}:")
    add(_block(vendor.system, 4))
    add("")
    add("connections:")
    add(f"  - name: {psa_key}-{vendor_key}")
    add(f"    psa: {psa_key}")
    add(f"    vendor: {vendor_key}")
    routing = str(psa.psa.get("routing") or "queues: []")
    add("    routing:")
    add(_block(routing, 6))
    accounts = str(vendor.vendor.get("accounts", "{}")).replace("{client}", client)
    add("    # PSA company -> the fields placing the vendor ticket in that client's account.")
    if accounts.strip() in ("{}", ""):
        add("    accounts: {}")
    else:
        add("    accounts:")
        add(_block(accounts, 6))
    add(f"    default_account: {str(vendor.vendor.get('default_account', 'null')).strip()}")
    add("    status_map:")
    add("      # Every vendor status, by its class, to the PSA status to set (null: leave it).")
    add("      vendor_to_psa:")
    for status in _vendor_statuses(vendor_cls):
        klass = _class_of(vendor_cls, status)
        target = status_for_class.get(klass.value) if klass is not None else None
        value = "null" if target is None else _q(target)
        comment = f"  # {klass.value}" if klass is not None else ""
        add(f"        {_q(status)}: {value}{comment}")
    add("      psa_to_vendor: {}             # e.g. a PSA cancellation to cancel at the vendor")
    vendor_ranks = _by_rank(dict(vendor_cls.priority_ranks), vendor_cls.known_priorities)
    psa_ranks = _by_rank(dict(psa_cls.priority_ranks), psa_cls.known_priorities)
    add("    priority_map:")
    if vendor_ranks and psa_ranks:
        add("      psa_to_vendor:                # by urgency (1 the most urgent)")
        for name, rank in psa_ranks:
            add(f"        {_q(name)}: {_q(_nearest(rank, vendor_ranks))}   # rank {rank}")
    else:
        add("      psa_to_vendor: {}")
    add("      vendor_to_psa: {}")
    add("    notes:")
    add(
        "      psa_public: public            # PSA discussion notes -> the vendor's public comments"
    )
    add("      psa_internal: skip            # PSA internal notes stay home (deny by default)")
    add("      vendor_public: internal       # vendor comments -> PSA internal notes")
    add("      vendor_private: internal      # vendor work notes -> PSA internal notes")
    add("")
    add("# Supplier SLA: the vendor is timed, from its own timestamps, while the ball is in its")
    add("# court; targets are keyed by the vendor's priority.")
    add("sla:")
    add("  calendars:")
    add("    - name: 24x7")
    add("      hours: 24x7")
    add("    - name: business")
    add("      timezone: America/New_York")
    add('      hours: {mon-fri: ["08:00-18:00"]}')
    if vendor_ranks:
        add("  contracts:")
        add(f"    - name: {vendor_cls.display_name} support")
        add(f"      vendor: {vendor_key}")
        add("      calendar: 24x7")
        add("      thresholds: [50, 75, 100]   # at-risk notes at 50 % and 75 %, breach at 100 %")
        add("      targets:")
        targets = (("15m", "1h", "4h"), ("30m", "2h", "8h"))
        for (name, _rank), (ack, cadence, resolution) in zip(vendor_ranks, targets, strict=False):
            add(f"        {_q(name)}:")
            add(f"          acknowledgment: {{duration: {ack}, business: false}}")
            add(f"          update_cadence: {{duration: {cadence}, business: false}}")
            add(f"          resolution: {{duration: {resolution}, business: false}}")
    add("")
    add("# Escalation rules: YAML files in a directory beside this file; `ticketbridge rules")
    add("# explain TICKET` shows what they do.  E-mail actions need notify.smtp.")
    add("# rules: {directory: rules, tick: 15m}")
    add("# notify:")
    add("#   smtp: {host: smtp.msp.example, port: 587, starttls: true,")
    add("#          from_address: servicedesk@msp.example}")
    return "\n".join(lines) + "\n"
