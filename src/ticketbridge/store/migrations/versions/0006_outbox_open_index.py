"""A partial index for the claim: the open outbox rows of a ticket, however many are done.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the same words as ticketbridge.store.tables (a migration keeps its own copy)
OPEN = "state IN ('pending', 'sending', 'dead')"


def upgrade() -> None:
    op.create_index(
        "ix_outbox_open",
        "outbox",
        ["link_id", "target_system", "id"],
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_open", table_name="outbox")
