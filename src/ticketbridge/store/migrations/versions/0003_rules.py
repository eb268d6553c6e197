"""Escalation rules: per-link rule state with its durable timer; lessons-learned records;
the PSA ticket's last-read snapshot on links.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("psa_snapshot", sa.JSON))
    op.create_table(
        "rule_states",
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("next_due_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("link_id", name="pk_rule_states"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_rule_states_link_id_links"),
    )
    op.create_index("ix_rule_states_next_due_at", "rule_states", ["next_due_at"])
    op.create_table(
        "lessons_learned",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_lessons_learned"),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name="fk_lessons_learned_link_id_links"),
        sa.UniqueConstraint("key", name="uq_lessons_learned_key"),
    )
    op.create_index("ix_lessons_learned_link", "lessons_learned", ["link_id"])


def downgrade() -> None:
    op.drop_table("lessons_learned")
    op.drop_table("rule_states")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("psa_snapshot")
