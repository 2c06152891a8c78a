"""Stage 5: a human says yes. Every deletion (unless the project turned it off) and every
action an ``@ask`` rule matched waits for an approval; an approval grants exactly that
action on that resource in that session, once, before it lapses."""

from __future__ import annotations

from tether.approvals.announce import approval_announcement, instructions
from tether.approvals.rules import approval_reason
from tether.pipeline.action import Action, Context, Deny, Pending, Verdict
from tether.store.approvals import (
    APPROVED,
    DENIED,
    PENDING,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalStore,
)
from tether.store.clock import iso_ms, now_ms

__all__ = ["RequireApproval"]


class RequireApproval:
    def __init__(self, store: ApprovalStore) -> None:
        self._store = store

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        assert ctx.identity is not None and ctx.session is not None
        why = approval_reason(
            action.action, ctx.identity.project, ctx.approval_needed, action.destructive
        )
        if why is None:
            return None
        latest = await self._store.latest(ctx.session.id, action.action, action.resource)
        state = latest.state_at(now_ms()) if latest else None
        if ctx.preview and state == APPROVED:
            return None
        if latest is not None and state == APPROVED and await self._store.use(latest):
            return self._granted(latest, ctx)
        if latest is not None and state == DENIED:
            return Deny(
                "approval_denied",
                f"approval {latest.id} for {action.action} on {action.resource} was denied "
                f"by {latest.decided_by}: {latest.decision_reason or 'no reason given'}",
                {"approval_id": latest.id},
            )
        if latest is not None and state == PENDING:
            return self._waiting(latest, why)
        if ctx.preview:
            return Pending("", why)
        ask = ApprovalRequest(
            project_id=ctx.identity.project.id,
            agent_id=ctx.identity.agent.id,
            session_id=ctx.session.id,
            action=action.action,
            resource=action.resource,
            reason=why,
            attributes={"source": action.source, "tags": action.tags},
        )
        announcement = approval_announcement(
            ask, ctx.identity.project.name, ctx.identity.agent.name
        )
        ttl_ms = ctx.identity.project.approval_ttl_seconds * 1000
        return self._waiting(await self._store.request(ask, ttl_ms, announcement), why)

    @staticmethod
    def _granted(approval: ApprovalRecord, ctx: Context) -> None:
        ctx.allowed_because = (
            f"approved by {approval.decided_by} at {iso_ms(approval.decided_at)} "
            f"(approval {approval.id}, now used)"
        )
        ctx.notes["approval_id"] = approval.id
        ctx.notes["approved_by"] = approval.decided_by
        ctx.notes["approved_at"] = iso_ms(approval.decided_at)
        return None

    @staticmethod
    def _waiting(approval: ApprovalRecord, why: str) -> Pending:
        return Pending(
            approval.id,
            f"{why}: approval {approval.id} is pending until {iso_ms(approval.expires_at)}; "
            f"{instructions(approval.id)}, then retry",
        )
