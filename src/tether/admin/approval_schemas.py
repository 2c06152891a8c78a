"""Admin API models for approvals."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tether.admin.schemas import Strict
from tether.clock import iso_ms
from tether.redaction.text import redact_text
from tether.store.approvals import ApprovalRecord

__all__ = ["ApprovalDecide", "ApprovalDeny", "ApprovalOut"]


class ApprovalDecide(Strict):
    reason: str = Field("", max_length=1000)
    ttl_seconds: int | None = Field(
        None,
        ge=1,
        le=7 * 86400,
        description="how long the approval may be used (default: the project's approval TTL)",
    )
    max_uses: int | None = Field(
        None,
        ge=1,
        description="a group: how many of its actions the grant allows (default: its count; "
        "never more)",
    )
    prefix: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="a group: narrow the grant to resources under this prefix (it must start "
        "with the group's prefix)",
    )


class ApprovalDeny(Strict):
    reason: str = Field(min_length=1, max_length=1000, description="shown to the agent")


class ApprovalOut(BaseModel):
    id: str
    project: str
    agent: str
    session: str
    action: str
    resource: str
    tags: dict[str, str]
    reason: str
    state: str
    requested_at: str | None
    expires_at: str | None
    decided_at: str | None
    decided_by: str | None
    decision_reason: str | None
    used_at: str | None
    prefix: str | None = None
    count: int = 1
    items: list[str] = []
    max_uses: int | None = None
    uses: int = 0
    grant_ttl_seconds: int | None = None

    @classmethod
    def of(
        cls,
        record: ApprovalRecord,
        state: str,
        project: str,
        agent: str,
        grant_ttl_seconds: int | None = None,
    ) -> ApprovalOut:
        tags: Any = record.attributes.get("tags") or {}
        items: Any = record.attributes.get("items") or []
        return cls(
            id=record.id,
            project=project,
            agent=agent,
            session=record.session_id,
            action=record.action,
            resource=record.resource,
            tags=tags,
            reason=record.reason,
            state=state,
            requested_at=iso_ms(record.requested_at),
            expires_at=iso_ms(record.expires_at),
            decided_at=iso_ms(record.decided_at),
            decided_by=record.decided_by,
            decision_reason=record.decision_reason,
            used_at=iso_ms(record.used_at),
            prefix=redact_text(record.scope_prefix) if record.scope_prefix else None,
            count=record.item_count,
            items=items,
            max_uses=record.max_uses,
            uses=record.uses,
            grant_ttl_seconds=grant_ttl_seconds,
        )
