"""agent AWS keys

Each agent's own AWS access key pair for the credential broker. The secret is sealed
(AES-256-GCM under the master key), not hashed: verifying SigV4 needs the secret itself.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_aws_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=32), nullable=False),
        sa.Column("access_key_id", sa.String(length=32), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_aws_keys_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_aws_keys")),
        sa.UniqueConstraint("access_key_id", name=op.f("uq_agent_aws_keys_access_key_id")),
    )
    with op.batch_alter_table("agent_aws_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_aws_keys_agent_id"), ["agent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_aws_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_aws_keys_agent_id"))
    op.drop_table("agent_aws_keys")
