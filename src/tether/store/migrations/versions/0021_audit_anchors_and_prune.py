"""audit: signing key for anchors, the chain's base after a prune, session replay index

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_chain", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("base_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("base_hash", sa.String(length=64), server_default="0" * 64, nullable=False)
        )
    op.create_table(
        "audit_signing_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_audit_events_session_seq", "audit_events", ["session_id", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_session_seq", table_name="audit_events")
    op.drop_table("audit_signing_key")
    with op.batch_alter_table("audit_chain", schema=None) as batch_op:
        batch_op.drop_column("base_hash")
        batch_op.drop_column("base_seq")
