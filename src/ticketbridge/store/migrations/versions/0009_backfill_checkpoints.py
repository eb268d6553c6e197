"""Backfill checkpoints: where an adoption of existing linked tickets stands, so an
interrupted run continues after the last ticket it finished.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "backfill_checkpoints",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("since_at", TS, nullable=False),
        sa.Column("resume_at", TS),
        sa.Column("resume_after", sa.String(128)),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.PrimaryKeyConstraint("scope", name="pk_backfill_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("backfill_checkpoints")
