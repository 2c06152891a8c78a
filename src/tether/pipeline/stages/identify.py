"""Stage 1: who is calling. Resolves the agent key; refuses unknown, expired, quarantined."""

from __future__ import annotations

from tether.identity.directory import Directory
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.store.records import AgentState

__all__ = ["IdentifyAgent"]


class IdentifyAgent:
    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        if not action.credential:
            return Deny(
                "missing_credentials",
                "no agent key: send it as 'Authorization: Bearer tth_…' or 'x-api-key'",
            )
        identity = await self._directory.identify_agent(action.credential)
        ctx.identity = identity
        if identity.agent.state is AgentState.QUARANTINED:
            return Deny(
                "agent_quarantined",
                f"agent {identity.agent.name!r} is quarantined: every action is denied until "
                "an operator releases it",
            )
        if identity.agent.state is AgentState.REVOKED:
            return Deny("agent_revoked", f"agent {identity.agent.name!r} has been revoked")
        return None
