"""Stage 3: stopped things stay stopped — fleet pause, project pause, agent stop or
quarantine, terminated session. Refusals name what was stopped and by whom."""

from __future__ import annotations

from tether.kill.switch import KillSwitch
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.pipeline.outcome import ToolUse

__all__ = ["EnforceKillSwitch"]


class EnforceKillSwitch:
    observes = True
    """A stopped session's reports (PostToolUse, Stop …) are refused too: the hook answer
    then stops Claude Code's turn."""

    def __init__(self, switch: KillSwitch) -> None:
        self._switch = switch

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        return await self._stopped(ctx)

    async def review(self, action: Action, ctx: Context, tool_use: ToolUse) -> Deny | None:
        """A tool call in an answer that arrives after its session, agent or project was
        stopped (the call was allowed before) is not handed to the agent."""
        return await self._stopped(ctx)

    async def _stopped(self, ctx: Context) -> Deny | None:
        """No session (``Action.session_optional``): the agent, project and fleet only."""
        assert ctx.identity is not None
        return self._switch.reason_to_stop(
            ctx.identity.agent.id,
            ctx.identity.project.id,
            ctx.session.id if ctx.session is not None else None,
        )
