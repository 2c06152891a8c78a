"""policy shadows: a candidate policy evaluated beside the one in force

One row per project at most: the candidate's source, decided beside the live policy on
every decision and recorded where the two differ (``tether policy apply --shadow``).

Revision ID: 0031
Revises: 0029
Create Date: 2026-12-04 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_shadows",
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(96), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_policy_shadows_project_id_projects",
        ),
        sa.PrimaryKeyConstraint("project_id", name="pk_policy_shadows"),
    )


def downgrade() -> None:
    op.drop_table("policy_shadows")
