"""One link's whole story across both systems, in time order (UTC).

The store keeps a link's story in several places, each the truth for one thing: the history
(``audit_events``: statuses, rules, the vendor ticket, closing), the note ledger (every note
seen and what became of it: mirrored, or skipped as internal, as an echo of our own write, as
older than the link, by policy), the outbox (every write and its outcome, dead letters
included), the supplier SLA clock (runs and pauses with whose move it was), the flags
(at risk, breached), breach investigations and lessons-learned records.  This module merges
them into one list of :class:`Entry`, one per thing that happened, without repeating what
two places both say (a mirrored note is one entry, not a ledger row plus its write).

Product-neutral and read-only: ``ticketbridge timeline``, the post-incident reviews and the
dashboard all call :func:`build_timeline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from ticketbridge.sla.clock import SlaState
from ticketbridge.store.rows import EventRow, LedgerRow, LinkRow, OutboxRow
from ticketbridge.store.timeline import LinkHistory, link_history, links_for_psa_ticket

__all__ = ["Entry", "build_timeline", "find_links", "from_history"]

#: History kinds another source tells better (the ledger, the outbox, the flags, the
#: review tables): left out so that nothing appears twice.
_TOLD_ELSEWHERE = frozenset(
    {
        "note_queued",
        "note_withheld",
        "vendor_note",
        "note_mirrored",
        "ticket_updated",
        "notified",
        "sla_at_risk",
        "sla_breached",
        "lessons_learned_opened",
    }
)

_NOTE_OUTCOMES = {
    "done": "note_mirrored",
    "pending": "note_pending",
    "dead": "note_dead",
    "skipped": "note_skipped",
}

_SKIP_WORDS = {
    "internal": "skipped: internal, stays in its system",
    "echo": "suppressed: echo of a note we wrote",
    "before_link": "skipped: written before the link (its history)",
    "policy": "skipped: the connection's note policy keeps it home",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing that happened to a link.

    ``side`` is ``psa``, ``vendor`` or ``bridge`` (ticketbridge itself: rules, clocks,
    notifications); ``system`` the configured system's name where one is concerned;
    ``kind`` a stable snake_case word for scripts; ``summary`` one line for people;
    ``detail`` the facts behind it (JSON-ready values, times as datetimes).
    """

    at: datetime
    side: str
    system: str | None
    kind: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_links(
    conn: Connection, psa_ticket: str, *, connection: str | None = None
) -> list[LinkRow]:
    """The links of a PSA ticket given by number or id (one per connection)."""
    return links_for_psa_ticket(conn, psa_ticket, connection=connection)


def build_timeline(conn: Connection, link_id: int) -> list[Entry]:
    """The link's merged timeline, oldest first; empty when there is no such link."""
    history = link_history(conn, link_id)
    return [] if history is None else from_history(history)


def from_history(history: LinkHistory) -> list[Entry]:
    """The timeline of a link's stored story (see :func:`build_timeline`)."""
    link = history.link
    keyed: list[tuple[datetime, int, int, Entry]] = []

    def add(entry: Entry, rank: int, seq: int) -> None:
        keyed.append((entry.at, rank, seq, entry))

    note_facts = _note_facts(history.events)
    for row in history.events:
        entry = _from_event(link, row)
        if entry is not None:
            add(entry, 0, row.id)
    ledger_keys = set()
    for note in history.notes:
        ledger_keys.add(note.key)
        writes = [w for w in history.writes if w.key == note.key]
        add(_from_note(link, note, note_facts.get(note.source_note_id, {}), writes), 1, note.id)
    for write in history.writes:
        if write.key not in ledger_keys:
            add(_from_write(link, write), 2, write.id)
    for entry in _from_clock(history):
        add(entry, 3, 0)
    investigations = {(i.metric, i.episode): i.id for i in history.investigations}
    for flag in history.flags:
        detail = {
            "metric": flag.metric,
            "level": flag.level,
            "episode": flag.episode,
            "flagged_at": flag.flagged_at,
        }
        words = flag.metric.replace("_", " ")
        if flag.kind == "breach":
            found = investigations.get((flag.metric, flag.episode))
            detail["investigation"] = found
            summary = f"supplier SLA breached: {words} target missed"
            if found is not None:
                summary += f" (breach investigation BI-{found})"
            kind = "sla_breached"
        elif flag.kind == "overdue":
            summary, kind = f"supplier SLA {words}: {flag.level}% of the target used", "sla_overdue"
        else:
            summary, kind = (
                f"supplier SLA at risk: {flag.level}% of the {words} target",
                "sla_at_risk",
            )
        add(
            Entry(flag.occurred_at, "vendor", link.vendor_system, kind, summary, detail), 4, flag.id
        )
    for inv in history.investigations:
        detail = {"id": f"BI-{inv.id}", "metric": inv.metric, "contract": inv.contract}
        add(
            Entry(
                inv.opened_at,
                "bridge",
                None,
                "breach_investigation_opened",
                f"breach investigation BI-{inv.id} opened ({inv.metric.replace('_', ' ')})",
                detail,
            ),
            5,
            inv.id,
        )
        if inv.closed_at is not None:
            add(
                Entry(
                    inv.closed_at,
                    "bridge",
                    None,
                    "breach_investigation_closed",
                    f"breach investigation BI-{inv.id} closed",
                    {**detail, "findings": inv.findings},
                ),
                5,
                inv.id,
            )
    for lesson in history.lessons:
        detail = {"id": f"LL-{lesson.id}", "rule": lesson.rule, "summary": lesson.summary}
        add(
            Entry(
                lesson.opened_at,
                "bridge",
                None,
                "lessons_learned_opened",
                f"rule {lesson.rule}: lessons-learned review LL-{lesson.id} opened",
                detail,
            ),
            6,
            lesson.id,
        )
        if lesson.closed_at is not None:
            add(
                Entry(
                    lesson.closed_at,
                    "bridge",
                    None,
                    "lessons_learned_closed",
                    f"lessons-learned review LL-{lesson.id} closed",
                    {**detail, "findings": lesson.findings},
                ),
                6,
                lesson.id,
            )
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [k[3] for k in keyed]


# -- sources ----------------------------------------------------------------------------
def _side(link: LinkRow, system: str | None) -> str:
    if system is not None and system == link.psa_system:
        return "psa"
    if system is not None and system == link.vendor_system:
        return "vendor"
    return "bridge"


def _note_facts(rows: list[EventRow]) -> dict[str, dict[str, Any]]:
    """What the history adds to a ledger row, by source note id: its visibility, author
    and the visibility it was mirrored with."""
    facts: dict[str, dict[str, Any]] = {}
    for row in rows:
        note_id = row.detail.get("note_id")
        if note_id is None:
            continue
        got = facts.setdefault(str(note_id), {})
        if row.kind == "vendor_note":
            got["visibility"] = row.detail.get("visibility")
            got["author"] = row.detail.get("author")
        elif row.kind == "note_queued":
            got["mirrored_as"] = row.detail.get("visibility")
    return facts


def _from_note(
    link: LinkRow, note: LedgerRow, facts: Mapping[str, Any], writes: list[OutboxRow]
) -> Entry:
    side = _side(link, note.source_system)
    other = "vendor" if side == "psa" else "PSA"
    kind = _NOTE_OUTCOMES.get(note.state, f"note_{note.state}")
    if note.state == "skipped":
        outcome = _SKIP_WORDS.get(note.reason or "", f"skipped: {note.reason}")
    elif note.state == "done":
        outcome = f"mirrored to the {other}"
        if facts.get("mirrored_as"):
            outcome += f" as {facts['mirrored_as']}"
    elif note.state == "dead":
        outcome = f"NOT mirrored to the {other}: its write is dead-lettered"
    else:
        outcome = f"waiting to be mirrored to the {other}"
    by = f" by {facts['author']}" if facts.get("author") else ""
    detail: dict[str, Any] = {
        "note_id": note.source_note_id,
        "state": note.state,
        "reason": note.reason,
        "target_system": note.target_system,
        "target_note_id": note.target_note_id,
        "done_at": note.done_at,
        **{k: v for k, v in facts.items() if v is not None},
    }
    if writes:
        write = writes[0]
        detail["write"] = {"id": write.id, "state": write.state, "done_at": write.done_at}
        if write.last_error:
            detail["write"]["error"] = write.last_error
        text = str(write.payload.get("text", "")).strip()
        if text:
            detail["text"] = text
    return Entry(
        note.source_created_at,
        side,
        note.source_system,
        kind,
        f"{side.upper() if side == 'psa' else side} note {note.source_note_id}{by}: {outcome}",
        detail,
    )


def _describe_write(write: OutboxRow) -> str:
    payload = write.payload
    if write.operation == "create_ticket":
        return f"open the vendor ticket: {payload.get('summary', '')!s}".rstrip(": ")
    if write.operation == "add_note":
        visibility = payload.get("visibility", "")
        first = str(payload.get("text", "")).strip().splitlines()
        article = "an" if str(visibility)[:1] in ("a", "e", "i", "o", "u") else "a"
        return f"add {article} {visibility} note: {first[0][:80] if first else ''}"
    if write.operation == "update_ticket":
        parts = [f"{k}={v}" for k, v in payload.items() if k != "fields"]
        parts += [f"{k}={v}" for k, v in dict(payload.get("fields") or {}).items()]
        return "set " + ", ".join(parts)
    if write.operation == "notify":
        who = payload.get("recipient") or payload.get("target") or payload.get("channel")
        return f"notify {who} by {payload.get('channel')}: {payload.get('subject') or ''}".rstrip(
            ": "
        )
    return write.operation


_WRITE_OUTCOMES = {
    "done": "done",
    "pending": "waiting",
    "sending": "being sent",
    "dead": "DEAD LETTER",
    "cancelled": "cancelled",
}


def _from_write(link: LinkRow, write: OutboxRow) -> Entry:
    outcome = _WRITE_OUTCOMES.get(write.state, write.state)
    if write.state == "dead" and write.last_error:
        outcome += f" ({write.last_error})"
    target = "notification" if write.operation == "notify" else write.target_system
    return Entry(
        write.created_at,
        _side(link, write.target_system),
        write.target_system,
        f"write_{write.state}",
        f"write to {target}: {_describe_write(write)} -> {outcome}",
        {
            "id": write.id,
            "operation": write.operation,
            "state": write.state,
            "attempts": write.attempts,
            "done_at": write.done_at,
            "error": write.last_error,
            "payload": write.payload,
        },
    )


def _from_event(link: LinkRow, row: EventRow) -> Entry | None:
    if row.kind in _TOLD_ELSEWHERE:
        return None
    d = row.detail
    at = row.occurred_at or row.recorded_at
    side = _side(link, row.system)
    kind, summary = row.kind, row.kind.replace("_", " ")
    if row.kind == "link_created":
        origin = d.get("origin")
        summary = f"linked ({origin})" + (
            f" to vendor ticket {d['vendor_ticket']}" if d.get("vendor_ticket") else ""
        )
    elif row.kind == "watch_started":
        summary = f"watched for escalation rules (queue {d.get('queue')})"
    elif row.kind == "psa_ticket_closed":
        kind, summary = "link_closed", "PSA ticket closed: the link is closed"
    elif row.kind == "vendor_ticket_created":
        summary = f"vendor ticket {d.get('number') or row.ticket_id} opened"
    elif row.kind == "vendor_ticket_seen":
        summary = f"vendor ticket {d.get('number') or row.ticket_id} first read"
    elif row.kind in ("psa_status_changed", "vendor_status_changed"):
        kind = "status_changed"
        by = " (our write)" if d.get("by_us") else ""
        summary = f"status {d.get('old') or '-'} -> {d.get('new')}{by}"
    elif row.kind in ("psa_priority_changed", "vendor_priority_changed"):
        kind = "priority_changed"
        summary = f"priority {d.get('old') or '-'} -> {d.get('new')}"
    elif row.kind == "vendor_assigned":
        summary = f"assigned {d.get('old') or '-'} -> {d.get('new') or '-'}"
    elif row.kind == "rule_chain_started":
        summary = f"rule {d.get('rule')}: chain started"
    elif row.kind == "rule_chain_stopped":
        summary = f"rule {d.get('rule')}: chain stopped ({d.get('reason')})"
    elif row.kind == "escalation_step":
        label = f": {d['label']}" if d.get("label") else ""
        summary = f"rule {d.get('rule')} step {d.get('step')}{label}"
    elif row.kind == "rule_escalated":
        summary = f"rule {d.get('rule')} escalated ({d.get('actions')} action(s))"
    elif row.kind == "rule_action_failed":
        summary = f"rule {d.get('rule')}: {d.get('action')} failed: {d.get('message')}"
    elif row.kind == "write_dead":
        kind = "dead_letter"
        summary = f"write dead-lettered: {d.get('operation')} ({d.get('error')})"
    elif row.kind == "link_adopted":
        summary = "link re-established on notes we had written"
    return Entry(at, side, row.system, kind, summary, dict(d))


_PARTY = {"msp": "MSP", "client": "client", "vendor": "vendor"}


def _from_clock(history: LinkHistory) -> list[Entry]:
    """The supplier SLA clock's runs and pauses, and when each metric stopped."""
    clock = history.clock
    if clock is None:
        return []
    link = history.link
    state = SlaState.from_dict(clock.state)
    vendor = link.vendor_system
    base = {"contract": clock.contract, "priority": clock.priority}
    out: list[Entry] = []
    if state.started_at is not None:
        out.append(
            Entry(
                state.started_at,
                "vendor",
                vendor,
                "sla_clock_started",
                f"supplier SLA clock started (contract '{clock.contract}')",
                dict(base),
            )
        )
    for pause in state.pauses:
        who = pause.ball.value
        why = "resolved" if who == "resolved" else f"ball with the {_PARTY.get(who, who)}"
        out.append(
            Entry(
                pause.start,
                "vendor",
                vendor,
                "sla_clock_paused",
                f"supplier SLA clock paused: {why}",
                {**base, "ball": who, "until": pause.end},
            )
        )
        if pause.end is not None:
            out.append(
                Entry(
                    pause.end,
                    "vendor",
                    vendor,
                    "sla_clock_resumed",
                    "supplier SLA clock running: ball with the vendor",
                    {**base, "paused_since": pause.start},
                )
            )
    for metric, words in (("acknowledgment", "acknowledged"), ("resolution", "resolved")):
        m = getattr(state, metric)
        if m.stopped_at is not None:
            out.append(
                Entry(
                    m.stopped_at,
                    "vendor",
                    vendor,
                    f"sla_{words}",
                    f"supplier SLA: vendor {words}",
                    {**base, "metric": metric, "elapsed_seconds": m.elapsed.total_seconds()},
                )
            )
    return out
