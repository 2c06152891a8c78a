"""budget_reservations.writes: a lease's write-backs counted

A write-back charges its period what the lease spent and shrinks the lease by it. On
PostgreSQL its commit can land while its reply is lost; sent again, it charged twice. Each
write-back now names the count it expects and adds one, so one sent again finds it landed.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("budget_reservations") as batch_op:
        batch_op.add_column(
            sa.Column("writes", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("budget_reservations") as batch_op:
        batch_op.drop_column("writes")
