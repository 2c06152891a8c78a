"""agent keys: when each was last used

Nullable: a key never used since this revision has no time. Written about once a second
from each replica's memory (``identity/key_use.py``), not per request.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
