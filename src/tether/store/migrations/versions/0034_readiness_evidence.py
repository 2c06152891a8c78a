"""readiness evidence: client addresses per agent key and hour; hook-seen cloud calls

``tether check`` warns when a key is used from several addresses at once, and when hooks
saw ``aws`` commands from an agent without broker keys: both answered from small tables
or a partial index rather than by reading a project's whole trail.

Revision ID: 0034
Revises: 0029
Create Date: 2026-12-04 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0031"
branch_labels = None
depends_on = None

HOOK_CLOUD = "source = 'claude_code_hook' AND resource LIKE 'arn:%'"


def upgrade() -> None:
    op.create_table(
        "agent_key_addresses",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("uses", sa.BigInteger, nullable=False),
        sa.Column("switches", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agent_key_addresses_hour", "agent_key_addresses", ["hour"])
    op.create_index(
        "ix_audit_events_hook_cloud",
        "audit_events",
        ["project_id", "ts"],
        sqlite_where=sa.text(HOOK_CLOUD),
        postgresql_where=sa.text(HOOK_CLOUD),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_hook_cloud", table_name="audit_events")
    op.drop_index("ix_agent_key_addresses_hour", table_name="agent_key_addresses")
    op.drop_table("agent_key_addresses")
