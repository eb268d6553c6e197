"""Supplier SLA: clocks, flags, breach investigations; the vendor's assignee on links.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("vendor_assignee", sa.String(128)))

    op.create_table(
        "sla_clocks",
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("contract", sa.String(128), nullable=False),
        sa.Column("priority", sa.String(64)),
        sa.Column("policy_key", sa.String(32), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("next_wakeup", TS),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("link_id", name="pk_sla_clocks"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_sla_clocks_link_id_links"),
    )
    op.create_index("ix_sla_clocks_next_wakeup", "sla_clocks", ["next_wakeup"])

    op.create_table(
        "sla_flags",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("episode", sa.Integer, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("flagged_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_flags"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_sla_flags_link_id_links"),
        sa.UniqueConstraint(
            "link_id",
            "metric",
            "kind",
            "level",
            "episode",
            name="uq_sla_flags_link_id_metric_kind_level_episode",
        ),
    )

    op.create_table(
        "breach_investigations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("link_id", sa.Integer, nullable=False),
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
        sa.Column("breached_at", TS, nullable=False),
        sa.Column("vendor_last_action", sa.Text),
        sa.Column("vendor_last_action_at", TS),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        sa.Column("findings", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_breach_investigations"),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name="fk_breach_investigations_link_id_links"
        ),
    )
    op.create_index("ix_breach_investigations_link", "breach_investigations", ["link_id"])


def downgrade() -> None:
    op.drop_table("breach_investigations")
    op.drop_table("sla_flags")
    op.drop_table("sla_clocks")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("vendor_assignee")
