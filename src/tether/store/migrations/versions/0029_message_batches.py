"""message batches: which agent, session and budget reservation each batch belongs to

A batch is reserved when created and settled when its results are read, possibly a day
later and in another process: the reservation's holds are kept with it.

Revision ID: 0029
Revises: 0024
Create Date: 2026-12-04 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_batches",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("reservation_id", sa.String(32), nullable=True),
        sa.Column("holds", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("reserved_micros", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("canceled_at", sa.BigInteger, nullable=True),
        sa.Column("settled_at", sa.BigInteger, nullable=True),
        sa.Column("settled_micros", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_message_batches_open", "message_batches", ["settled_at", "agent_id"])


def downgrade() -> None:
    op.drop_index("ix_message_batches_open", table_name="message_batches")
    op.drop_table("message_batches")
