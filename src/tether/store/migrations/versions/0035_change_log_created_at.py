"""change_log.created_at indexed

The change feed reads the changes past the last one it applied plus those of the last
few seconds (PostgreSQL can commit ids out of order); without an index on
``created_at`` each read walked the hour of changes kept, four times a second in every
process.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06 18:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_change_log_created_at", "change_log", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_change_log_created_at", table_name="change_log")
