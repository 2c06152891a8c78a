"""Stage 2: which session. Creates it on first sight; refuses a session of another agent."""

from __future__ import annotations

from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.sessions.ids import session_id_problem
from tether.sessions.registry import SessionRegistry, new_session_id

__all__ = ["OpenSession"]


class OpenSession:
    observes = True
    """Also runs for observations (``Pipeline.observe``)."""

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        identity = ctx.identity
        assert identity is not None, "OpenSession runs after IdentifyAgent"
        session_id = action.session_id or new_session_id()
        if problem := session_id_problem(session_id):
            return Deny("invalid_session_id", problem)
        session = await self._registry.open(session_id, identity.agent.id, identity.project.id)
        if session.agent_id != identity.agent.id:
            return Deny(
                "session_not_owned",
                f"session {session_id} belongs to another agent; start a new session id",
            )
        ctx.session = session
        if not ctx.preview:
            self._registry.note_request(session.id)
        return None
