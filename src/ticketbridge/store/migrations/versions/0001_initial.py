"""Initial schema: links, note ledger, outbox, webhook inbox, poll cursors, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("psa_system", sa.String(64), nullable=False),
        sa.Column("psa_ticket_id", sa.String(128), nullable=False),
        sa.Column("psa_number", sa.String(128)),
        sa.Column("vendor_system", sa.String(64), nullable=False),
        sa.Column("vendor_ticket_id", sa.String(128)),
        sa.Column("vendor_number", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("company", sa.String(128)),
        sa.Column("psa_status", sa.String(128)),
        sa.Column("vendor_status", sa.String(128)),
        sa.Column("psa_priority", sa.String(128)),
        sa.Column("vendor_priority", sa.String(128)),
        sa.Column("psa_status_written", sa.String(128)),
        sa.Column("vendor_status_written", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_links"),
        sa.UniqueConstraint(
            "connection", "psa_ticket_id", name="uq_links_connection_psa_ticket_id"
        ),
    )
    op.create_index("ix_links_vendor", "links", ["vendor_system", "vendor_ticket_id"])
    op.create_index("ix_links_psa", "links", ["psa_system", "psa_ticket_id"])

    op.create_table(
        "note_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("source_system", sa.String(64), nullable=False),
        sa.Column("source_note_id", sa.String(128), nullable=False),
        sa.Column("source_created_at", TS, nullable=False),
        sa.Column("target_system", sa.String(64), nullable=False),
        sa.Column("target_note_id", sa.String(128)),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_note_ledger"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_note_ledger_link_id_links"),
        sa.UniqueConstraint(
            "link_id",
            "source_system",
            "source_note_id",
            name="uq_note_ledger_link_id_source_system_source_note_id",
        ),
        sa.UniqueConstraint("key", name="uq_note_ledger_key"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("target_system", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("uncertain", sa.Boolean, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("source_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_outbox_link_id_links"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_state_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_order", "outbox", ["link_id", "target_system", "id"])

    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("delivery_key", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("processed_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
        sa.UniqueConstraint("system", "delivery_key", name="uq_webhook_inbox_system_delivery_key"),
    )
    op.create_index("ix_inbox_state", "webhook_inbox", ["state", "id"])

    op.create_table(
        "poll_cursors",
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("position", TS),
        sa.Column("seen", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("system", name="pk_poll_cursors"),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("link_id", sa.Integer),
        sa.Column("connection", sa.String(64)),
        sa.Column("system", sa.String(64)),
        sa.Column("ticket_id", sa.String(128)),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("occurred_at", TS),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_audit_events_link_id_links"),
    )
    op.create_index("ix_audit_events_link", "audit_events", ["link_id", "id"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("poll_cursors")
    op.drop_table("webhook_inbox")
    op.drop_table("outbox")
    op.drop_table("note_ledger")
    op.drop_table("links")
