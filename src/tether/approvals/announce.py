"""What the project's webhooks are told when an approval is requested."""

from __future__ import annotations

from typing import Any

from tether.redaction.text import redact_text
from tether.store.approvals import ApprovalRequest

__all__ = ["approval_announcement", "instructions"]


def instructions(approval_id: str) -> str:
    return (
        f"approve with `tether approvals approve {approval_id}` or deny with "
        f"`tether approvals deny {approval_id} --reason …`"
    )


def approval_announcement(
    ask: ApprovalRequest, project: str, agent: str, prefix: str | None = None
) -> dict[str, Any]:
    """With ``prefix``: a group — later deletions under it join this one request, which
    the dashboard and ``tether approvals show`` count and name (first items)."""
    grouped = (
        {
            "resource": redact_text(f"{prefix}*"),
            "prefix": redact_text(prefix),
            "count": 1,
            "items": [redact_text(ask.resource)],
        }
        if prefix is not None
        else {}
    )
    return {
        "event": "approval.requested",
        "project": project,
        "agent": agent,
        "session": ask.session_id,
        "action": ask.action,
        "resource": redact_text(ask.resource),
        "tags": ask.attributes.get("tags", {}),
        "reason": ask.reason,
        **grouped,
    }
