"""Stage 2: which session. Creates it on first sight.

Session ids are the agents' own (Claude Code's session id), so two agents may present the
same one: the first keeps it, any other gets a session of its own under a derived id, and
nothing it does lands in, stops, or reveals the other agent's session. A caller that names
no session (a script on the raw API) is given the session of its conversation, so its
repeats add up and per-session limits hold for it too."""

from __future__ import annotations

import hashlib

from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.sessions.conversations import new_session_id
from tether.sessions.ids import session_id_problem
from tether.sessions.registry import SessionRegistry

__all__ = ["OpenSession", "agents_own_session_id"]


def agents_own_session_id(session_id: str, agent_id: str) -> str:
    """Where an agent's session lives when another agent holds its id."""
    tag = hashlib.blake2b(f"{agent_id}\0{session_id}".encode(), digest_size=6).hexdigest()
    return f"{session_id[:100]}~{tag}"


class OpenSession:
    observes = True
    """Also runs for observations (``Pipeline.observe``)."""

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        identity = ctx.identity
        assert identity is not None, "OpenSession runs after IdentifyAgent"
        session_id = action.session_id
        new = False
        if not session_id and action.join_latest_session:
            session_id = await self._registry.latest_session(identity.agent.id)
        if not session_id and action.session_optional:
            return None
        if not session_id and action.conversation:
            session_id, new = await self._registry.conversation_session(
                identity.agent.id, action.conversation
            )
        if not session_id:
            session_id, new = new_session_id(), True
        if problem := session_id_problem(session_id):
            return Deny("invalid_session_id", problem)
        if new and not ctx.preview:
            session = await self._registry.open_new(
                session_id, identity.agent.id, identity.project.id
            )
        else:
            session = await self._registry.open(session_id, identity.agent.id, identity.project.id)
        if session.agent_id != identity.agent.id:
            own = agents_own_session_id(session_id, identity.agent.id)
            session = await self._registry.open(own, identity.agent.id, identity.project.id)
            if session.agent_id != identity.agent.id:
                return Deny("session_not_owned", f"session {own} belongs to another agent")
        if (unwritten := self._registry.unwritten(session.id)) is not None:
            if ctx.preview:
                await unwritten.result()
            else:
                ctx.unwritten.append(unwritten)
        ctx.session = session
        if not ctx.preview:
            self._registry.note_request(session.id)
        return None
