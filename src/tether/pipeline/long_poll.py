"""Deciding what one call would do — one action, or every action of one tool call — with
an optional bounded wait for approvals.

Several actions are decided as one: if any would be refused, only that refusal is
decided; if some need approval, only their requests are made; only when every action can
go ahead are they decided for real, so no approval is spent on a call that then fails.
"""

from __future__ import annotations

import asyncio

from tether.approvals.waiter import ApprovalWaiter
from tether.loop_share import LoopShare
from tether.pipeline.action import Action, CallReads, Decision, Deny, Pending
from tether.pipeline.pipeline import Pipeline

__all__ = ["decide_as_one"]


async def _decide(pipeline: Pipeline, action: Action) -> Decision:
    decision = await pipeline.decide(action)
    action.session_id = decision.session_id
    return decision


async def _blocking(pipeline: Pipeline, actions: list[Action]) -> list[Action] | None:
    """The actions that must be decided first (a refusal, or those awaiting approval)."""
    if len(actions) == 1:
        return None
    share = LoopShare()
    previews = []
    reads = CallReads(actions)
    try:
        for action in actions:
            action.call_reads = reads
            previews.append(await pipeline.preview(action))
            await share.turn()
    finally:
        for action in actions:
            action.call_reads = None
    refused = [a for a, p in zip(actions, previews, strict=True) if isinstance(p, Deny)]
    if refused:
        return refused[:1]
    waiting = [a for a, p in zip(actions, previews, strict=True) if isinstance(p, Pending)]
    return waiting or None


async def decide_as_one(
    pipeline: Pipeline, waiter: ApprovalWaiter, actions: list[Action], wait_seconds: float = 0
) -> list[Decision]:
    """The decisions taken, in order; the call may go ahead only if every one is allowed
    and there is one per action."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        first = await _blocking(pipeline, actions)
        decisions: list[Decision] = []
        for action in first or actions:
            decisions.append(await _decide(pipeline, action))
            if not decisions[-1].allowed and first is None:
                break
        approvals = [d.approval_id for d in decisions if d.pending and d.approval_id]
        refused = any(not d.allowed and not d.pending for d in decisions)
        if first is not None and not approvals and not refused:
            continue  # approved between the look ahead and the decision: look again
        if refused or not approvals or loop.time() >= deadline:
            return decisions
        for approval_id in approvals:
            await waiter.wait(approval_id, max(0.0, deadline - loop.time()))
