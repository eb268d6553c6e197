"""SQLAlchemy Core tables.  Migrations live in ``migrations/versions``; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "UTCDateTime",
    "backfill_checkpoints",
    "breach_investigations",
    "closeout_tickets",
    "closeouts",
    "cursors",
    "events",
    "inbox",
    "installation",
    "ledger",
    "lessons_learned",
    "links",
    "metadata",
    "outbox",
    "rule_states",
    "sla_clocks",
    "sla_flags",
]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: One PSA ticket <-> one vendor ticket inside a connection.
links = sa.Table(
    "links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection", sa.String(64), nullable=False),
    sa.Column("psa_system", sa.String(64), nullable=False),
    sa.Column("psa_ticket_id", sa.String(128), nullable=False),
    sa.Column("psa_number", sa.String(128)),
    sa.Column("vendor_system", sa.String(64), nullable=False),
    sa.Column("vendor_ticket_id", sa.String(128)),
    sa.Column("vendor_number", sa.String(128)),
    # creating | open | closed
    sa.Column("state", sa.String(16), nullable=False),
    # routed | manual
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("company", sa.String(128)),
    sa.Column("psa_status", sa.String(128)),
    sa.Column("vendor_status", sa.String(128)),
    sa.Column("psa_priority", sa.String(128)),
    sa.Column("vendor_priority", sa.String(128)),
    # the last status each side was given by us (to tell our own writes from people's)
    sa.Column("psa_status_written", sa.String(128)),
    sa.Column("vendor_status_written", sa.String(128)),
    sa.Column("vendor_assignee", sa.String(128)),
    # the PSA ticket as last read (queue, type, assignee, summary...): what rules look at
    sa.Column("psa_snapshot", sa.JSON),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("connection", "psa_ticket_id"),
    sa.Index("ix_links_vendor", "vendor_system", "vendor_ticket_id"),
    sa.Index("ix_links_psa", "psa_system", "psa_ticket_id"),
)

#: Every note seen on a linked ticket, and what became of it.
ledger = sa.Table(
    "note_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("source_system", sa.String(64), nullable=False),
    sa.Column("source_note_id", sa.String(128), nullable=False),
    sa.Column("source_created_at", UTCDateTime, nullable=False),
    sa.Column("target_system", sa.String(64), nullable=False),
    sa.Column("target_note_id", sa.String(128)),
    sa.Column("key", sa.String(32), nullable=False),
    # pending | done | skipped | dead
    sa.Column("state", sa.String(16), nullable=False),
    # why skipped: internal | echo | before_link | policy | backfill (a note found when
    # its link was adopted: seen, or, state done, its copy found on the other side)
    sa.Column("reason", sa.String(32)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("done_at", UTCDateTime),
    sa.UniqueConstraint("link_id", "source_system", "source_note_id"),
    sa.UniqueConstraint("key"),
)

#: Writes still to be made, each with its idempotency key.
#: The outbox rows that hold later ones of their ticket back (the partial index's condition;
#: the claim states it in the same words so that the database can use the index).
OUTBOX_OPEN = "state IN ('pending', 'sending', 'dead')"

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("target_system", sa.String(64), nullable=False),
    # create_ticket | add_note | update_ticket
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("key", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    # pending | sending | done | dead | cancelled
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # a failure left it unknown whether the write took effect: look it up first
    sa.Column("uncertain", sa.Boolean, nullable=False, default=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("source_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("done_at", UTCDateTime),
    # the token of the claim that owns the row while it is 'sending' (fencing: a process
    # whose lease ran out and whose row was claimed again cannot complete it any more)
    sa.Column("claim_token", sa.String(32)),
    # when the write's delivery deadline started: its creation, or an operator's requeue
    sa.Column("deadline_from", UTCDateTime),
    sa.UniqueConstraint("key"),
    sa.Index("ix_outbox_state_due", "state", "next_attempt_at"),
    sa.Index("ix_outbox_order", "link_id", "target_system", "id"),
    # A claim looks for open rows before each candidate of the same ticket: over the open
    # rows only, however many are done.
    sa.Index(
        "ix_outbox_open",
        "link_id",
        "target_system",
        "id",
        sqlite_where=sa.text(OUTBOX_OPEN),
        postgresql_where=sa.text(OUTBOX_OPEN),
    ),
)

#: Verified webhook deliveries, as hints to re-read a ticket.
inbox = sa.Table(
    "webhook_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("delivery_key", sa.String(200), nullable=False),
    sa.Column("ticket_id", sa.String(128), nullable=False),
    # pending | done
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime),
    sa.UniqueConstraint("system", "delivery_key"),
    sa.Index("ix_inbox_state", "state", "id"),
)

#: Where each system's incremental poll stands.
cursors = sa.Table(
    "poll_cursors",
    metadata,
    sa.Column("system", sa.String(64), primary_key=True),
    # highest source timestamp contiguously processed
    sa.Column("position", UTCDateTime),
    # (ticket id -> source updated-at) processed inside the overlap window; the key ""
    # holds the ticket a poll stopped after at its page limit (repo.CursorState.resume_after)
    sa.Column("seen", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: The history of every link (and of things that never became links): audit and SLA input.
events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id")),
    sa.Column("connection", sa.String(64)),
    sa.Column("system", sa.String(64)),
    sa.Column("ticket_id", sa.String(128)),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    # when it happened, by the source system's clock (None when only we know)
    sa.Column("occurred_at", UTCDateTime),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_audit_events_link", "link_id", "id"),
)

#: One supplier SLA clock per link: its checkpoint and when it next needs a look.
sla_clocks = sa.Table(
    "sla_clocks",
    metadata,
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), primary_key=True),
    sa.Column("contract", sa.String(128), nullable=False),
    sa.Column("priority", sa.String(64)),
    sa.Column("policy_key", sa.String(32), nullable=False),
    # SlaState.to_dict(): the checkpoint after the link's events
    sa.Column("state", sa.JSON, nullable=False),
    # next threshold or deadline if nothing changes (None: nothing running)
    sa.Column("next_wakeup", UTCDateTime),
    sa.Column("breached", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_sla_clocks_next_wakeup", "next_wakeup"),
)

#: Thresholds and breaches already flagged: each exactly once, across restarts.
sla_flags = sa.Table(
    "sla_flags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    # at_risk | breach
    sa.Column("kind", sa.String(16), nullable=False),
    # threshold percent (at_risk) or 100 (breach)
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("episode", sa.Integer, nullable=False),
    # when it happened by the vendor's clock
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("flagged_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("link_id", "metric", "kind", "level", "episode"),
)

#: The "Service Level Breach investigation" each breach opens.
breach_investigations = sa.Table(
    "breach_investigations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("connection", sa.String(64), nullable=False),
    sa.Column("vendor_system", sa.String(64), nullable=False),
    sa.Column("vendor_ticket", sa.String(128)),
    sa.Column("contract", sa.String(128), nullable=False),
    sa.Column("priority", sa.String(64)),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("target_seconds", sa.Float),
    sa.Column("elapsed_seconds", sa.Float, nullable=False),
    sa.Column("business", sa.Boolean, nullable=False),
    sa.Column("breached_at", UTCDateTime, nullable=False),
    sa.Column("vendor_last_action", sa.Text),
    sa.Column("vendor_last_action_at", UTCDateTime),
    # open | closed
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("findings", sa.Text),
    sa.Index("ix_breach_investigations_link", "link_id"),
)

#: Escalation rules' progress per link: running chains (with their snapshots), runs done,
#: and the next instant a step is due (the durable timer).
rule_states = sa.Table(
    "rule_states",
    metadata,
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("next_due_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_rule_states_next_due_at", "next_due_at"),
)

#: Post-incident reviews opened when a linked ticket closes after a breach or an escalation.
lessons_learned = sa.Table(
    "lessons_learned",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("key", sa.String(32), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    # open | closed
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    # what the review found, written when it is closed
    sa.Column("findings", sa.Text),
    sa.UniqueConstraint("key"),
    sa.Index("ix_lessons_learned_link", "link_id"),
)

#: Settings of this installation kept in the store (e.g. the generated marker secret).
installation = sa.Table(
    "installation",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

#: Where a backfill (the adoption of linked tickets that exist before ticketbridge knew
#: them) stands, per scope (PSA system and connections): the keyset of the last ticket
#: it finished, so an interrupted run continues right after it.
backfill_checkpoints = sa.Table(
    "backfill_checkpoints",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    # the oldest ticket update the run adopts (its --since, fixed at its first start)
    sa.Column("since_at", UTCDateTime, nullable=False),
    # the (updated_at, ticket id) of the last ticket finished; None: none yet
    sa.Column("resume_at", UTCDateTime),
    sa.Column("resume_after", sa.String(128)),
    # what the run did so far: tickets read, links adopted, notes matched, ...
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # None while the run is unfinished (the next run continues it)
    sa.Column("finished_at", UTCDateTime),
)

#: Client service closeouts: a client's open tickets completed or cancelled at its vendors
#: when the client leaves.  While one is ``closing`` the rules skip the client's links.
closeouts = sa.Table(
    "closeouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # the client as links record it (``links.company``)
    sa.Column("client", sa.String(128), nullable=False),
    # closing | done
    sa.Column("state", sa.String(16), nullable=False),
    # why it is not done yet (the vendor tickets still open), as last seen
    sa.Column("reason", sa.Text),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Index("ix_closeouts_client", "client", "id"),
)

#: Each ticket of a closeout and what became of it at its vendor.
closeout_tickets = sa.Table(
    "closeout_tickets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("closeout_id", sa.Integer, sa.ForeignKey("closeouts.id"), nullable=False),
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id"), nullable=False),
    # complete | cancel | none (no vendor ticket to close)
    sa.Column("disposition", sa.String(16), nullable=False),
    # queued | confirmed | refused | open | nothing_to_close
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("vendor_status", sa.String(128)),
    sa.Column("reason", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime),
    sa.UniqueConstraint("closeout_id", "link_id"),
    sa.Index("ix_closeout_tickets_link", "link_id"),
)
