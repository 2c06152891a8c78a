"""outbox dead letter

Deliveries a receiver refused for good (4xx other than 408/429, or a deleted webhook)
stop being retried and are kept with ``dead_at`` set, for ``tether webhooks deliveries``.

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-29 23:56:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dead_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("dead_at")
