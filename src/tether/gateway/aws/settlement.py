"""The decisions one AWS call went ahead on, settled together exactly once.

A call is decided as one or more actions (every key of a ``DeleteObjects``); whichever
way it ends — relayed, refused as a whole for one of its actions, or stopped before it
left tether (no credential to sign with, a request tether cannot send) — each allowed
decision gets one completion, and one that was not carried out says so (``NOT_SENT``),
which gives back an approval grant it spent.
"""

from __future__ import annotations

import time

from tether.pipeline import Decision, Pipeline
from tether.pipeline.outcome import NOT_SENT, Outcome

__all__ = ["CallSettlement", "refused_as_a_whole"]


def refused_as_a_whole(blocking: Decision) -> str:
    """Why the call's other actions were not carried out: the decision that stopped it."""
    action = blocking.action
    what = f"{action.action} on {action.resource}" if action is not None else "an action"
    return (
        f"not carried out: the call was refused as a whole by decision {blocking.event_id} "
        f"({what}: {blocking.code or blocking.result})"
    )


class CallSettlement:
    def __init__(self, pipeline: Pipeline, decisions: list[Decision], started: float) -> None:
        """``started``: ``time.perf_counter()`` when the call came in."""
        self._pipeline = pipeline
        self.decisions = [d for d in decisions if d.allowed]
        self._started = started
        self.sent = False
        """The request left for upstream: from then on it may have been carried out."""
        self.settled = False

    async def settle(self, status: int, detail: str, *, reached: bool) -> None:
        """What upstream answered, or how sending it failed (``reached``: it may have got
        there)."""
        result = "ok" if status < 400 else "error"
        await self._settle(result, status, detail, reached)

    async def not_sent(self, status: int, detail: str) -> None:
        """The call did not leave tether: nothing was done upstream."""
        await self._settle(NOT_SENT, status, detail, False)

    async def abandoned(self, detail: str) -> None:
        """The client left (or tether stopped) before the answer was relayed."""
        await self._settle("abandoned", 499, detail, self.sent)

    async def _settle(self, result: str, status: int, detail: str, reached: bool) -> None:
        if self.settled:
            return
        self.settled = True
        latency = (time.perf_counter() - self._started) * 1000
        for decision in self.decisions:
            await self._pipeline.settle_later(
                decision,
                Outcome(
                    result=result,
                    status=status,
                    latency_ms=latency,
                    detail=detail,
                    upstream_reached=reached,
                ),
            )
