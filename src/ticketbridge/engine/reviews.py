"""The post-incident review written back to the PSA ticket when its link closes.

A ticket that closes after a supplier SLA breach or an escalation has a review record (the
lessons-learned record a rule opened on closing, else the breach investigation); its
document goes to the PSA ticket as one internal note.  Like every write it is an outbox row
(invariant 1: no direct write), committed with the decision that saw the ticket close, and
keyed by the ticket and the moment it closed: written once, and once more only if the ticket
is reopened and closed again.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.engine import Connection

from ticketbridge import operations as outbox
from ticketbridge.domain import Visibility, idempotency_key
from ticketbridge.incident_review import PolicyLookup, render, review_of
from ticketbridge.store import repo
from ticketbridge.store.timeline import InvestigationRow, LessonRow, link_history

__all__ = ["ReviewWriter"]

log = structlog.get_logger("ticketbridge.reviews")


class ReviewWriter:
    """Queues the review note of a link that has just closed."""

    def __init__(self, policy: PolicyLookup | None) -> None:
        self.policy = policy

    def on_closed(self, c: Connection, link_id: int, now: datetime) -> bool:
        """In the caller's transaction: queue the review note of a closed link that was
        breached or escalated and has a review record; True when a note was queued."""
        history = link_history(c, link_id)
        if history is None or history.link.state != "closed":
            return False
        closes = [e for e in history.events if e.kind == "psa_ticket_closed"]
        breached = any(f.kind == "breach" for f in history.flags)
        escalated = any(e.kind == "rule_escalated" for e in history.events)
        if not closes or not (breached or escalated):
            return False
        record: LessonRow | InvestigationRow | None = None
        if history.lessons:
            record = history.lessons[-1]
        elif history.investigations:
            record = history.investigations[-1]
        if record is None:
            log.info("review_not_written", reason="no lessons-learned or investigation record")
            return False
        review = review_of(history, record, now=now, policy=self.policy)
        link = history.link
        closed_at = closes[-1].occurred_at or closes[-1].recorded_at
        key = idempotency_key(
            link.psa_system, link.psa_ticket_id, link.psa_system, "review", closed_at.isoformat()
        )
        note = outbox.AddNote(render(review, "text"), Visibility.INTERNAL)
        queued = repo.enqueue(
            c,
            link_id=link.id,
            target_system=link.psa_system,
            operation=note.op,
            key=key,
            payload=note.to_json(),
            now=now,
            uncertain=True,  # a fresh or restored store may not know it was written
        )
        if queued:
            log.info("review_queued", review=review.id)
        return queued
