"""Runs the stages in order and records the decision before anyone acts on it."""

from __future__ import annotations

import logging
from typing import Protocol

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import TetherError
from tether.pipeline.action import Action, Context, Decision, Deny, Pending, Verdict

__all__ = ["Pipeline", "Stage"]

log = logging.getLogger(__name__)


class Stage(Protocol):
    """One check. Return None for no objection, or a Verdict to stop the pipeline there."""

    async def check(self, action: Action, ctx: Context) -> Verdict | None: ...


class Pipeline:
    def __init__(self, stages: list[Stage], audit: AuditLog) -> None:
        self.stages = stages
        self._audit = audit

    async def decide(self, action: Action, ctx: Context | None = None) -> Decision:
        """Fail closed: a stage that cannot check denies. Raises ``AuditUnavailable``
        (503) when the decision could not be recorded; nothing may act on it then."""
        ctx = ctx or Context()
        verdict: Verdict | None = None
        for stage in self.stages:
            try:
                verdict = await stage.check(action, ctx)
            except TetherError as exc:
                verdict = Deny(exc.code, exc.message)
            except Exception:
                log.exception("stage %s failed", type(stage).__name__)
                verdict = Deny("internal_error", "tether could not check this action; denied")
            if verdict is not None:
                break
        event = _event_for(action, ctx, verdict)
        await self._audit.record(event)
        identity = ctx.identity
        return Decision(
            result=event.result,
            reason=event.reason,
            event_id=event.id,
            code=event.code,
            session_id=ctx.session.id if ctx.session else action.session_id,
            agent_name=identity.agent.name if identity else None,
            project_name=identity.project.name if identity else None,
            evidence=verdict.evidence if isinstance(verdict, Deny) else {},
        )


def _event_for(action: Action, ctx: Context, verdict: Verdict | None) -> AuditEvent:
    identity = ctx.identity
    event = AuditEvent(
        actor=f"agent:{identity.agent.name}" if identity else "agent:unidentified",
        source=action.source,
        action=action.action,
        resource=action.resource,
        result="allow",
        reason="no stage objected",
        project_id=identity.project.id if identity else None,
        agent_id=identity.agent.id if identity else None,
        agent_name=identity.agent.name if identity else None,
        session_id=ctx.session.id if ctx.session else action.session_id,
        attributes=action.attributes,
    )
    if isinstance(verdict, Deny):
        event.result, event.code, event.reason = "deny", verdict.code, verdict.reason
    elif isinstance(verdict, Pending):
        event.result, event.reason = "pending", verdict.reason
        event.attributes = {**action.attributes, "approval_id": verdict.approval_id}
    return event
