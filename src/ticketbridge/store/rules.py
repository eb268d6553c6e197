"""Escalation-rule persistence: per-link progress with its timer, lessons-learned reviews."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ticketbridge.store.closeout import held_clause
from ticketbridge.store.rows import ClockRow, EventRow, LinkRow, RuleStateRow, from_row
from ticketbridge.store.tables import (
    events,
    installation,
    lessons_learned,
    links,
    rule_states,
    sla_clocks,
)
from ticketbridge.store.upsert import insert_ignore, upsert

__all__ = [
    "RuleInputs",
    "due_rule_links",
    "links_rules_act_on",
    "links_without_rule_state",
    "open_lessons_learned",
    "rule_inputs",
    "rule_state",
    "rules_digest",
    "save_rule_state",
    "save_rules_digest",
]


def rule_state(conn: Connection, link_id: int) -> RuleStateRow | None:
    """The link's stored rule progress, or None before its first evaluation."""
    row = conn.execute(sa.select(rule_states).where(rule_states.c.link_id == link_id)).first()
    return None if row is None else from_row(RuleStateRow, row)


@dataclass(frozen=True, slots=True)
class RuleInputs:
    """What evaluating the rules of a batch of links reads, loaded for the whole batch."""

    links: dict[int, LinkRow] = field(default_factory=dict)
    states: dict[int, RuleStateRow] = field(default_factory=dict)
    clocks: dict[int, ClockRow] = field(default_factory=dict)
    #: Each link's events of the kinds asked for, oldest first.
    events: dict[int, list[EventRow]] = field(default_factory=dict)
    #: The links a client closeout holds: their rules do nothing (``closeout.held_clause``).
    held: set[int] = field(default_factory=set)

    def has_event(self, link_id: int, kind: str) -> bool:
        return any(row.kind == kind for row in self.events.get(link_id, ()))


def rule_inputs(conn: Connection, link_ids: Sequence[int], kinds: Collection[str]) -> RuleInputs:
    """The links ``link_ids`` with their rule states, SLA clocks and events of ``kinds``:
    four statements for the whole batch instead of several per link."""
    inputs = RuleInputs()
    if not link_ids:
        return inputs
    ids = list(link_ids)
    held = held_clause().label("closeout_held")
    for row in conn.execute(sa.select(links, held).where(links.c.id.in_(ids))):
        link = from_row(LinkRow, row)
        inputs.links[link.id] = link
        if row.closeout_held:
            inputs.held.add(link.id)
    for row in conn.execute(sa.select(rule_states).where(rule_states.c.link_id.in_(ids))):
        state = from_row(RuleStateRow, row)
        inputs.states[state.link_id] = state
    for row in conn.execute(sa.select(sla_clocks).where(sla_clocks.c.link_id.in_(ids))):
        clock = from_row(ClockRow, row)
        inputs.clocks[clock.link_id] = clock
    query = (
        sa.select(events)
        .where(events.c.link_id.in_(ids), events.c.kind.in_(list(kinds)))
        .order_by(events.c.id)
    )
    for row in conn.execute(query):
        event = from_row(EventRow, row)
        assert event.link_id is not None
        inputs.events.setdefault(event.link_id, []).append(event)
    return inputs


def save_rule_state(
    conn: Connection,
    link_id: int,
    *,
    state: Mapping[str, Any],
    next_due_at: datetime | None,
    now: datetime,
) -> None:
    """Store the link's rule progress and timer, replacing what it had."""
    values = {"link_id": link_id, "state": dict(state), "next_due_at": next_due_at}
    upsert(conn, rule_states, {**values, "updated_at": now}, on=["link_id"])


def due_rule_links(conn: Connection, now: datetime, *, limit: int) -> list[int]:
    """Links whose next rule step is due, the most overdue first."""
    rows = conn.execute(
        sa.select(rule_states.c.link_id)
        .where(rule_states.c.next_due_at.is_not(None), rule_states.c.next_due_at <= now)
        .order_by(rule_states.c.next_due_at)
        .limit(limit)
    )
    return [int(r[0]) for r in rows]


def links_without_rule_state(conn: Connection, *, after: int, limit: int) -> list[int]:
    """Open or watched links never evaluated yet (no rule state), by id after ``after``."""
    stated = sa.select(rule_states.c.link_id).where(rule_states.c.link_id == links.c.id)
    rows = conn.execute(
        sa.select(links.c.id)
        .where(links.c.state.in_(("open", "watching")), links.c.id > after, ~stated.exists())
        .order_by(links.c.id)
        .limit(limit)
    )
    return [int(r[0]) for r in rows]


#: The installation setting holding the digest of the rules the stored timers were set by.
RULES_DIGEST = "rules_digest"


def rules_digest(conn: Connection) -> str | None:
    """The digest of the rules (and SLA settings) the stored rule timers were set by."""
    value = conn.execute(
        sa.select(installation.c.value).where(installation.c.name == RULES_DIGEST)
    ).scalar_one_or_none()
    return None if value is None else str(value)


def save_rules_digest(conn: Connection, digest: str, now: datetime) -> None:
    upsert(
        conn, installation, {"name": RULES_DIGEST, "value": digest, "created_at": now}, on=["name"]
    )


def links_rules_act_on(conn: Connection, *, psa_ticket: str | None = None) -> list[LinkRow]:
    """Every link the escalation rules can act on, oldest first: watched tickets (not yet
    at a vendor), open links, and any other link with a rule step still due (a running
    chain on a closed ticket).  A link still being created without a vendor ticket is left
    out: the engine does not evaluate it until it has one.

    ``psa_ticket`` keeps the links of that PSA ticket (its id or number).  One selection
    for ``rules explain`` and ``rules simulate``.
    """
    pending = sa.select(rule_states.c.link_id).where(rule_states.c.next_due_at.is_not(None))
    query = (
        sa.select(links)
        .where(
            sa.or_(links.c.state.in_(("watching", "open")), links.c.id.in_(pending)),
            sa.not_(sa.and_(links.c.state == "creating", links.c.vendor_ticket_id.is_(None))),
        )
        .order_by(links.c.id)
    )
    if psa_ticket is not None:
        query = query.where(
            sa.or_(links.c.psa_ticket_id == psa_ticket, links.c.psa_number == psa_ticket)
        )
    return [from_row(LinkRow, row) for row in conn.execute(query)]


def open_lessons_learned(
    conn: Connection,
    link_id: int,
    *,
    rule: str,
    key: str,
    summary: str,
    details: str,
    now: datetime,
) -> bool:
    """Open a post-incident review unless one with this key exists; True when opened."""
    values = {
        "link_id": link_id,
        "rule": rule,
        "key": key,
        "summary": summary,
        "details": details,
        "state": "open",
        "opened_at": now,
    }
    return insert_ignore(conn, lessons_learned, values, on=["key"])


def lessons_learned_summaries(conn: Connection) -> list[str]:
    """The summary of every review opened, oldest first."""
    rows = conn.execute(sa.select(lessons_learned.c.summary).order_by(lessons_learned.c.id))
    return [str(r[0]) for r in rows]
