"""Stage 1: who is calling. Resolves the agent key; unknown, expired and revoked keys stop here."""

from __future__ import annotations

from tether.identity.directory import Directory
from tether.pipeline.action import Action, Context, Deny, Verdict

__all__ = ["AWS_SOURCE", "IdentifyAgent"]

AWS_SOURCE = "aws"
"""Actions from the AWS door carry the access key id whose SigV4 signature the door
verified; only that door may present one."""


class IdentifyAgent:
    observes = True
    """Also runs for observations (``Pipeline.observe``)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        if not action.credential:
            return Deny(
                "missing_credentials",
                "no agent key: send it as 'Authorization: Bearer tth_…' or 'x-api-key'",
            )
        if action.source == AWS_SOURCE:
            ctx.identity = await self._directory.identify_aws(action.credential)
        else:
            ctx.identity = await self._directory.identify_agent(action.credential)
        return None
