"""audit events: an index by project, action and time for readiness checks

``tether check`` asks "the last drill:kill of this project", "tool results in 7 days":
answered from this index rather than by reading a project's whole trail.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 04:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_project_action_ts", "audit_events", ["project_id", "action", "ts"]
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_project_action_ts", table_name="audit_events")
