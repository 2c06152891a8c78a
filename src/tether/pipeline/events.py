"""Audit events built from what the pipeline decided and from what then happened.

Built from the Decision and the Outcome themselves, so what was decided and what was
recorded cannot drift apart.
"""

from __future__ import annotations

from tether.audit.event import AuditEvent
from tether.pipeline.action import Action, Context, Deny, Pending, Verdict
from tether.pipeline.outcome import Outcome
from tether.redaction.text import digest, redacted_summary

__all__ = ["decision_event", "observation_event", "outcome_events"]


def _base(action: Action, ctx: Context, source_action: str, resource: str) -> AuditEvent:
    identity = ctx.identity
    return AuditEvent(
        actor=f"agent:{identity.agent.name}" if identity else "agent:unidentified",
        source=action.source,
        action=source_action,
        resource=resource,
        result="allow",
        project_id=identity.project.id if identity else None,
        agent_id=identity.agent.id if identity else None,
        agent_name=identity.agent.name if identity else None,
        session_id=ctx.session.id if ctx.session else action.session_id,
    )


def decision_event(action: Action, ctx: Context, verdict: Verdict | None) -> AuditEvent:
    event = _base(action, ctx, action.action, action.resource)
    event.reason = ctx.allowed_because or "no stage objected"
    event.attributes = {**action.attributes, **ctx.notes}
    if action.tags:
        event.attributes["tags"] = action.tags
    if isinstance(verdict, Deny):
        event.result, event.code, event.reason = "deny", verdict.code, verdict.reason
    elif isinstance(verdict, Pending):
        event.result, event.code, event.reason = "pending", "approval_pending", verdict.reason
        event.attributes["approval_id"] = verdict.approval_id
    return event


def observation_event(action: Action, ctx: Context, result: str, reason: str) -> AuditEvent:
    event = _base(action, ctx, action.action, action.resource)
    event.result, event.reason, event.attributes = result, reason, dict(action.attributes)
    return event


def outcome_events(
    action: Action, ctx: Context, outcome: Outcome, decision_id: str
) -> list[AuditEvent]:
    """The completion event, then one event per tool_result sent and tool_use received."""
    completion = _base(action, ctx, f"{action.action}:completed", action.resource)
    completion.result = outcome.result
    completion.reason = outcome.detail
    completion.code = None if outcome.result == "ok" else f"http_{outcome.status}"
    completion.attributes = {
        "decision_event": decision_id,
        "model": outcome.model,
        "status": outcome.status,
        "latency_ms": round(outcome.latency_ms, 2),
        "usage": outcome.usage.as_dict() if outcome.usage else None,
        "cost_usd": outcome.cost_usd,
        "usage_final": outcome.usage_final,
        "price_known": outcome.price_known,
        "upstream_request_id": outcome.upstream_request_id,
        "upstream_reached": outcome.upstream_reached,
    }
    events = [completion]
    for result in action.tool_results:
        event = _base(action, ctx, "tool_result", result.tool_use_id)
        event.result = "error" if result.is_error else "ok"
        event.attributes = {"tool_use_id": result.tool_use_id, "is_error": result.is_error}
        events.append(event)
    for use in outcome.tool_uses:
        event = _base(action, ctx, f"tool_use:{use.name}", use.name)
        event.result = "emitted"
        event.attributes = {
            "tool_use_id": use.id,
            "tool": use.name,
            "input_digest": digest(use.input),
            "input_summary": redacted_summary(use.input),
        }
        events.append(event)
    return events
