"""mcp_servers: remote MCP servers a project's agents reach through tether

The upstream credential (a bearer token or headers, as JSON) is sealed with the master
key; ``pins`` holds each tool's pinned definition digest and any change waiting for an
operator (``tether mcp accept``).

Revision ID: 0027
Revises: 0023
Create Date: 2026-12-04 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("auth_kind", sa.String(16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("pins", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_mcp_servers_project_name"),
    )


def downgrade() -> None:
    op.drop_table("mcp_servers")
