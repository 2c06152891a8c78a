"""approval groups: one request per intent

A deletion burst under one prefix in one session joins one pending approval
(``scope_prefix``, ``item_count``); approving it grants ``max_uses`` actions under the
prefix, counted in ``uses``.

Revision ID: 0024
Revises: 0028
Create Date: 2026-12-04 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope_prefix", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("item_count", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("max_uses", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("uses", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("uses")
        batch_op.drop_column("max_uses")
        batch_op.drop_column("item_count")
        batch_op.drop_column("scope_prefix")
