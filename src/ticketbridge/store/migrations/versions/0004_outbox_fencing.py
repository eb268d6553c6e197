"""Outbox fencing: the claim token of the process that owns a write in flight, and when a
write's delivery deadline started (its creation, or an operator's requeue).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(32)))
        batch.add_column(sa.Column("deadline_from", TS))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("deadline_from")
        batch.drop_column("claim_token")
