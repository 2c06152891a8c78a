"""slack interactions: the signing secret (sealed), who may approve from Slack, seen requests

The Approve / Deny buttons of an approval message post to tether, signed by Slack with the
app's signing secret. Slack users are mapped to tether operators per project; signatures
seen in the last few minutes are remembered so a captured request cannot be replayed.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_settings",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("signing_secret_sealed", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(96), nullable=False),
    )
    op.create_table(
        "slack_approvers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column(
            "project_id",
            sa.String(32),
            sa.ForeignKey("projects.id", name="fk_slack_approvers_project_id_projects"),
            nullable=False,
        ),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(96), nullable=False),
        sa.UniqueConstraint("team_id", "user_id", "project_id", name="uq_slack_approvers_team_id"),
    )
    op.create_table(
        "slack_seen_requests",
        sa.Column("signature_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_slack_seen_requests_expires_at", "slack_seen_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_seen_requests_expires_at", table_name="slack_seen_requests")
    op.drop_table("slack_seen_requests")
    op.drop_table("slack_approvers")
    op.drop_table("slack_settings")
