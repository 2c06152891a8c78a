"""budget reservations: unsettled after a crash

A reservation whose process died before settling it is marked ``unsettled_at`` instead of
being charged: it still counts against the limit (it stays reserved) until upstream's
usage or an operator (``tether budgets settle``) settles it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("budget_reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unsettled_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("budget_reservations", schema=None) as batch_op:
        batch_op.drop_column("unsettled_at")
