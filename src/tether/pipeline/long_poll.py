"""Deciding what one call would do — one action, or every action of one tool call — with
an optional bounded wait for approvals.

Several actions are decided as one: if any would be refused, only that refusal is
decided; if some need approval, only their requests are made; only when every action can
go ahead are they decided for real, so no approval is spent on a call that then fails.
The one exception is an approval that lands while its actions' requests are being made:
those decided after it go ahead on it, and are kept (never decided, nor spent, again).
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


async def _blocking(pipeline: Pipeline, actions: list[Action]) -> list[int] | None:
    """The positions of the actions that must be decided first (a refusal, or those
    awaiting approval)."""
    if len(actions) <= 1:
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
    refused = [at for at, p in enumerate(previews) if isinstance(p, Deny)]
    if refused:
        return refused[:1]
    waiting = [at for at, p in enumerate(previews) if isinstance(p, Pending)]
    return waiting or None


async def decide_as_one(
    pipeline: Pipeline, waiter: ApprovalWaiter, actions: list[Action], wait_seconds: float = 0
) -> list[Decision]:
    """The decisions taken, in order; the call may go ahead only if every one is allowed
    and there is one per action."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    went_ahead: dict[int, Decision] = {}
    """Actions an approval that landed after the look-ahead let through: their grant is
    spent, so they are never decided again (a second decision would spend it twice, or
    ask anew for what was just approved)."""
    while True:
        rest = [at for at in range(len(actions)) if at not in went_ahead]
        first = await _blocking(pipeline, [actions[at] for at in rest])
        taken: dict[int, Decision] = {}
        for at in [rest[i] for i in first] if first is not None else rest:
            taken[at] = decision = await _decide(pipeline, actions[at])
            if decision.allowed:
                went_ahead[at] = decision
            elif first is None:
                break
        approvals = [d.approval_id for d in taken.values() if d.pending and d.approval_id]
        refused = any(not d.allowed and not d.pending for d in taken.values())
        if first is not None and not approvals and not refused:
            continue  # approved between the look ahead and the decision: look again
        if refused or not approvals or loop.time() >= deadline:
            decided = went_ahead | taken
            return [decided[at] for at in sorted(decided)]
        for approval_id in approvals:
            await waiter.wait(approval_id, max(0.0, deadline - loop.time()))
