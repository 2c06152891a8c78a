"""Stage 5: a human says yes. Every deletion (unless the project turned it off) and every
action an ``@ask`` rule matched waits for an approval; an approval grants exactly that
action on that resource in that session, once, before it lapses. Deletions are asked
once per intent: those of one action under one parent prefix in one session join one
pending request (a group), whose grant covers a count of actions under the prefix."""

from __future__ import annotations

from tether.approvals.announce import approval_announcement, instructions
from tether.approvals.groups import GroupLocks, group_prefix
from tether.approvals.rules import approval_reason
from tether.clock import iso_ms, now_ms
from tether.pipeline.action import Action, Context, Deny, Pending, Verdict
from tether.pipeline.outcome import NOT_SENT, Outcome
from tether.policy.actions import classify
from tether.store.approvals import (
    APPROVED,
    DENIED,
    PENDING,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalSnapshot,
    ApprovalStore,
)

__all__ = ["RequireApproval"]

SNAPSHOT = "approvals"
"""This stage's key in ``CallReads.reads``."""


class RequireApproval:
    def __init__(self, store: ApprovalStore) -> None:
        self._store = store
        self._locks = GroupLocks()

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        assert ctx.identity is not None and ctx.session is not None
        why = approval_reason(
            action.action, ctx.identity.project, ctx.approval_needed, action.destructive
        )
        if why is None:
            return None
        prefix = group_prefix(action.resource)
        if prefix is not None and not ctx.approval_needed and classify(action.action).is_deletion:
            async with self._locks.hold(ctx.session.id, action.action, prefix):
                snapshot = await self._looked_ahead(action, ctx)
                latest, group = (
                    (snapshot.latest(action.resource), snapshot.group_for(action.resource))
                    if snapshot is not None
                    else await self._store.latest_and_group(
                        ctx.session.id, action.action, action.resource
                    )
                )
                applies, verdict = await self._single_decided(action, ctx, latest)
                if applies:
                    return verdict
                return await self._grouped(action, ctx, why, prefix, group)
        snapshot = await self._looked_ahead(action, ctx)
        latest = (
            snapshot.latest(action.resource)
            if snapshot is not None
            else await self._store.latest(ctx.session.id, action.action, action.resource)
        )
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
        return await self._ask(action, ctx, why)

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        """A grant spent on an action that was then not carried out is given back: the
        human approved doing it once, and it was not done."""
        approval_id = ctx.notes.get("approval_id")
        if outcome.result == NOT_SENT and isinstance(approval_id, str):
            await self._store.give_back(approval_id)

    async def _looked_ahead(self, action: Action, ctx: Context) -> ApprovalSnapshot | None:
        """In a preview of one call's many actions (``Action.call_reads``), this action's
        approvals as read once for all of them; None otherwise (read them one by one)."""
        shared = action.call_reads
        if shared is None or not ctx.preview:
            return None
        assert ctx.session is not None
        key = (SNAPSHOT, ctx.session.id, action.action)
        snapshot = shared.reads.get(key)
        if not isinstance(snapshot, ApprovalSnapshot):
            resources = [a.resource for a in shared.actions if a.action == action.action]
            snapshot = await self._store.snapshot(ctx.session.id, action.action, resources)
            shared.reads[key] = snapshot
        return snapshot

    async def _single_decided(
        self, action: Action, ctx: Context, latest: ApprovalRecord | None
    ) -> tuple[bool, Verdict | None]:
        """A group of one decided as that one action (see ``ApprovalStore.decide``): its
        grant or denial, with False first when there is none to apply. ``latest``: the
        newest approval of exactly this action."""
        if latest is None or latest.grouped:
            return False, None
        state = latest.state_at(now_ms())
        if state == APPROVED:
            if ctx.preview:
                return True, None
            if await self._store.use(latest):
                return True, self._granted(latest, ctx)
        if state == DENIED:
            return True, Deny(
                "approval_denied",
                f"approval {latest.id} for {action.action} on {action.resource} was denied "
                f"by {latest.decided_by}: {latest.decision_reason or 'no reason given'}",
                {"approval_id": latest.id},
            )
        return False, None

    async def _grouped(
        self, action: Action, ctx: Context, why: str, prefix: str, group: ApprovalRecord | None
    ) -> Verdict | None:
        """``group``: the covering group read with the exact approval; read again after a
        grant was spent or a group decided meanwhile."""
        assert ctx.identity is not None and ctx.session is not None
        for attempt in range(3):
            if attempt:
                group = await self._store.group_for(ctx.session.id, action.action, action.resource)
            state = group.state_at(now_ms()) if group else None
            if group is not None and state == APPROVED:
                if ctx.preview and group.uses < (group.max_uses or 1):
                    return None
                if not ctx.preview and await self._store.use(group):
                    return self._granted(group, ctx)
                continue  # spent meanwhile: look again, a new request if it is used up
            if group is not None and state == DENIED:
                return Deny(
                    "approval_denied",
                    f"approval {group.id} for {action.action} under {group.resource} was "
                    f"denied by {group.decided_by}: {group.decision_reason or 'no reason given'}",
                    {"approval_id": group.id},
                )
            if group is not None and state == PENDING:
                if ctx.preview or await self._store.join(group, action.resource):
                    return self._waiting(group, why)
                continue  # decided meanwhile: look again
            break
        if ctx.preview:
            return Pending("", why)
        return await self._ask(action, ctx, why, prefix)

    async def _ask(
        self, action: Action, ctx: Context, why: str, prefix: str | None = None
    ) -> Verdict:
        """A new approval request (a group under ``prefix`` when given), announced once."""
        assert ctx.identity is not None and ctx.session is not None
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
            ask, ctx.identity.project.name, ctx.identity.agent.name, prefix
        )
        ttl_ms = ctx.identity.project.approval_ttl_seconds * 1000
        record = await self._store.request(ask, ttl_ms, announcement, scope_prefix=prefix)
        return self._waiting(record, why)

    @staticmethod
    def _granted(approval: ApprovalRecord, ctx: Context) -> None:
        spent = (
            f"{approval.uses + 1} of {approval.max_uses or 1} under {approval.scope_prefix}"
            if approval.grouped
            else "now used"
        )
        ctx.allowed_because = (
            f"approved by {approval.decided_by} at {iso_ms(approval.decided_at)} "
            f"(approval {approval.id}, {spent})"
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
