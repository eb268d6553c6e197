"""Pure decisions: routing, note visibility, attribution, ticket drafts.  No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ticketbridge.config import ConnectionConfig, NotePolicy
from ticketbridge.domain import Note, Ticket, TicketDraft, Visibility, marker_is_ours

__all__ = [
    "Route",
    "account_for",
    "draft_for",
    "is_echo",
    "psa_note_target",
    "render_for_psa",
    "render_for_vendor",
    "route",
    "vendor_note_target",
    "watched",
]


@dataclass(frozen=True, slots=True)
class Route:
    """Why a PSA ticket belongs to a connection."""

    origin: Literal["routed", "manual"]
    vendor_number: str | None = None


def route(conn: ConnectionConfig, ticket: Ticket) -> Route | None:
    """Does this PSA ticket go to this connection's vendor?  ``None``: no."""
    rules = conn.routing
    if rules.link_by_field and ticket.external_ref and ticket.external_ref.strip():
        return Route("manual", ticket.external_ref.strip())
    if ticket.closed or not rules.queues or ticket.queue not in rules.queues:
        return None
    if rules.statuses and ticket.status not in rules.statuses:
        return None
    if rules.types and ticket.type not in rules.types:
        return None
    if rules.priorities and ticket.priority not in rules.priorities:
        return None
    return Route("routed")


def watched(conn: ConnectionConfig, ticket: Ticket) -> bool:
    """Is this PSA ticket tracked for escalation rules before it goes to the vendor?"""
    return (
        not ticket.closed
        and ticket.queue is not None
        and (ticket.queue in conn.routing.watch_queues)
    )


def account_for(conn: ConnectionConfig, company: str | None) -> dict[str, str] | None:
    """The vendor account fields for a PSA company; ``None``: this client is not routed here."""
    if company is not None and company in conn.accounts:
        return dict(conn.accounts[company])
    return dict(conn.default_account) if conn.default_account is not None else None


def draft_for(
    conn: ConnectionConfig, ticket: Ticket, account: dict[str, str], psa_label: str
) -> TicketDraft:
    lines = [ticket.description.strip()] if ticket.description.strip() else []
    lines.append("--")
    if ticket.company_name or ticket.company:
        who = ticket.company_name or ticket.company
        ident = f" ({ticket.company})" if ticket.company_name and ticket.company else ""
        lines.append(f"Client: {who}{ident}")
    if ticket.contact and (ticket.contact.name or ticket.contact.email or ticket.contact.phone):
        parts = [
            p
            for p in (
                ticket.contact.name,
                f"<{ticket.contact.email}>" if ticket.contact.email else None,
                ticket.contact.phone,
            )
            if p
        ]
        lines.append("Contact: " + " ".join(parts))
    lines.append(f"MSP ticket: {psa_label} #{ticket.ref.label}")
    priority = conn.priority_map.psa_to_vendor.get(ticket.priority or "")
    return TicketDraft(
        summary=ticket.summary,
        description="\n".join(lines),
        priority=priority,
        account=account,
        contact=ticket.contact,
        company_name=ticket.company_name,
        external_ref=ticket.ref.label,
    )


def is_echo(note: Note, secret: str, ours: frozenset[str] = frozenset()) -> bool:
    """Did ticketbridge write this note (never mirror it back)?

    Yes when the ledger says so (``ours``: ids of notes we wrote on that side), when the
    note's author is the integration user (``Note.by_us``), or when it carries a marker
    signed with the installation's ``secret`` for this very ticket.  Text merely shaped
    like a marker (a quoted reply, a pasted log, a marker copied from another ticket) is
    a person's note.
    """
    return (
        note.id in ours
        or note.by_us
        or marker_is_ours(note.text, secret, note.system, note.ticket_id)
    )


def psa_note_target(policy: NotePolicy, visibility: Visibility) -> Visibility | None:
    """How a PSA note goes to the vendor, or ``None`` when it stays in the PSA.

    Deny by default: anything not known to be public counts as internal, and
    internal notes leave only when the policy says ``psa_internal: private``.
    """
    if visibility is Visibility.PUBLIC:
        return {"public": Visibility.PUBLIC, "private": Visibility.INTERNAL, "skip": None}[
            policy.psa_public
        ]
    return Visibility.INTERNAL if policy.psa_internal == "private" else None


def vendor_note_target(policy: NotePolicy, visibility: Visibility) -> Visibility | None:
    """How a vendor note lands in the PSA (internal unless the policy says otherwise)."""
    if visibility is Visibility.PUBLIC:
        return {"internal": Visibility.INTERNAL, "public": Visibility.PUBLIC, "skip": None}[
            policy.vendor_public
        ]
    return Visibility.INTERNAL if policy.vendor_private == "internal" else None


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def render_for_vendor(note: Note, psa_label: str, psa_ticket: str) -> str:
    """A PSA note as the vendor will read it: who wrote it and where.  The same note
    always renders the same text (our writes are found again by body)."""
    author = note.author or "MSP engineer"
    return f"{author} wrote in {psa_label} ticket #{psa_ticket}:\n\n{note.text.strip()}"


def render_for_psa(note: Note, vendor_label: str, vendor_ticket: str) -> str:
    """A vendor note as the engineer will read it in the PSA."""
    kind = "public comment" if note.visibility is Visibility.PUBLIC else "internal note"
    author = note.author or "vendor"
    return (
        f"[{vendor_label} {vendor_ticket} · {kind}] {author}, {_stamp(note.created_at)}:\n\n"
        f"{note.text.strip()}"
    )
