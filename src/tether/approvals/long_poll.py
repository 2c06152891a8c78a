"""Deciding with a bounded wait: a front door whose caller is willing to wait for a
pending approval decides, waits for the approval's decision, then decides again."""

from __future__ import annotations

from tether.approvals.waiter import ApprovalWaiter
from tether.pipeline import Action, Decision, Pipeline

__all__ = ["decide_waiting"]


async def decide_waiting(
    pipeline: Pipeline, waiter: ApprovalWaiter, action: Action, seconds: float
) -> Decision:
    """The second decision is audited like the first; it uses the approval if granted."""
    decision = await pipeline.decide(action)
    if decision.pending and decision.approval_id and seconds > 0:
        await waiter.wait(decision.approval_id, seconds)
        action.session_id = decision.session_id
        decision = await pipeline.decide(action)
    return decision
