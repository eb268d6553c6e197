"""The review list: what vendors have that no link holds (``ticketbridge mail unmatched``),
and linking one to a PSA ticket (``ticketbridge mail link``).

Product-neutral: it asks every vendor adapter for :meth:`TicketAdapter.unmatched` (the
e-mail adapter lists the threads a vendor's people started in our mailbox) and links through
the PSA ticket's vendor-reference field, exactly as an engineer who types a case number
there does — the engine then adopts the vendor ticket (``routing.link_by_field``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ticketbridge.adapters.base import TicketAdapter
from ticketbridge.config import ConnectionConfig, TicketBridgeConfig
from ticketbridge.domain import FieldChange, Unmatched
from ticketbridge.errors import NotFoundError
from ticketbridge.store import Store, repo

__all__ = ["Listed", "ReviewError", "link_to_psa", "unmatched"]


class ReviewError(Exception):
    """A review-list request that cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class Listed:
    system: str
    item: Unmatched


async def unmatched(
    config: TicketBridgeConfig,
    store: Store,
    adapters: Mapping[str, TicketAdapter],
    *,
    system: str | None = None,
    since: datetime | None = None,
) -> list[Listed]:
    """Every vendor system's unlinked items (of ``system`` only, when given), oldest first."""
    vendors = _vendor_systems(config, system)
    found: list[Listed] = []
    for name in vendors:
        items = await adapters[name].unmatched(since)
        if not items:
            continue
        with store.tx() as c:
            linked = {
                item.ticket_id for item in items if repo.links_for_vendor(c, name, item.ticket_id)
            }
        found += [Listed(name, item) for item in items if item.ticket_id not in linked]
    return sorted(found, key=lambda x: (x.item.at, x.system, x.item.item_id))


async def link_to_psa(
    config: TicketBridgeConfig,
    adapters: Mapping[str, TicketAdapter],
    *,
    reference: str,
    psa_ticket: str,
    system: str | None = None,
) -> tuple[ConnectionConfig, str]:
    """Write ``reference`` (a vendor case number or a review-list reference) into the PSA
    ticket's vendor-reference field; the engine links it on the ticket's next read.  Returns
    the connection and the vendor ticket's label."""
    conns = [conn for conn in config.connections if system is None or conn.vendor == system]
    if not conns:
        raise ReviewError(
            f"no connection has the vendor system {system!r}"
            if system
            else "no connections are configured"
        )
    if len(conns) > 1:
        names = ", ".join(sorted({conn.vendor for conn in conns}))
        raise ReviewError(f"several vendor systems ({names}): name one with --system")
    conn = conns[0]
    if not conn.routing.link_by_field:
        raise ReviewError(
            f"connection {conn.name!r} does not link by the PSA ticket's vendor-reference field: "
            f"set connections.{conn.name}.routing.link_by_field: true"
        )
    vendor = await adapters[conn.vendor].find_ticket(reference)
    if vendor is None:
        raise ReviewError(f"{conn.vendor} has no ticket {reference!r}")
    psa = adapters[conn.psa]
    try:
        ticket = await psa.get_ticket(psa_ticket)
    except NotFoundError:
        raise ReviewError(f"{conn.psa} has no ticket {psa_ticket!r}") from None
    if ticket.external_ref and ticket.external_ref.strip() not in ("", reference):
        raise ReviewError(
            f"{conn.psa} ticket {ticket.ref.label} already refers to {ticket.external_ref!r}; "
            "clear that field first if the reference is wrong"
        )
    await psa.update_ticket(ticket.ref.id, FieldChange(external_ref=reference))
    return conn, vendor.ref.label


def _vendor_systems(config: TicketBridgeConfig, system: str | None) -> list[str]:
    vendors = sorted({conn.vendor for conn in config.connections})
    if system is not None:
        if system not in vendors:
            known = ", ".join(vendors) or "none"
            raise ReviewError(
                f"{system!r} is not a vendor system of any connection (known: {known})"
            )
        return [system]
    return vendors
