"""Lessons-learned records keep the findings written when the review is closed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lessons_learned") as batch:
        batch.add_column(sa.Column("findings", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("lessons_learned") as batch:
        batch.drop_column("findings")
