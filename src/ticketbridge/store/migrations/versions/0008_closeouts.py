"""Client service closeouts: one row per closeout, one per ticket it closes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "closeouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_closeouts"),
    )
    op.create_index("ix_closeouts_client", "closeouts", ["client", "id"])
    op.create_table(
        "closeout_tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("closeout_id", sa.Integer, nullable=False),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("vendor_status", sa.String(128)),
        sa.Column("reason", sa.Text),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("confirmed_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_closeout_tickets"),
        sa.ForeignKeyConstraint(
            ["closeout_id"], ["closeouts.id"], name="fk_closeout_tickets_closeout_id_closeouts"
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name="fk_closeout_tickets_link_id_links"
        ),
        sa.UniqueConstraint(
            "closeout_id", "link_id", name="uq_closeout_tickets_closeout_id_link_id"
        ),
    )
    op.create_index("ix_closeout_tickets_link", "closeout_tickets", ["link_id"])


def downgrade() -> None:
    op.drop_index("ix_closeout_tickets_link", table_name="closeout_tickets")
    op.drop_table("closeout_tickets")
    op.drop_index("ix_closeouts_client", table_name="closeouts")
    op.drop_table("closeouts")
