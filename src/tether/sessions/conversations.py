"""Which session a caller that names none is in: a model call's is its conversation's
(the agent and a digest of how the conversation began), the same while it goes on, a new
one after it was idle for ``CONVERSATION_IDLE_MS``; a cloud call joins the agent's latest
session, if it was active that recently.

In memory for one process; in Redis (``TETHER_REDIS_URL``) for a fleet
(``redis_conversations``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from tether.clock import new_uuid7, now_ms

__all__ = [
    "CONVERSATION_IDLE_MS",
    "Conversations",
    "LocalConversations",
    "new_session_id",
]

CONVERSATION_IDLE_MS = 30 * 60 * 1000
"""A conversation silent this long starts a new session when it speaks again (a script
run again tomorrow with the same prompt is a new run, not the old session)."""
REMEMBERED = 100_000


def new_session_id() -> str:
    """UUID-shaped (the audit trail skips its secret scan for those), time-ordered: a
    client that names no session starts one per conversation, and its row and budget
    period are then added at the end of their indexes."""
    return new_uuid7()


class Conversations(Protocol):
    async def session_of(
        self, agent_id: str, conversation: str, proposed: str | None = None
    ) -> str:
        """The conversation's session; a conversation that has none (or was idle too
        long) gets ``proposed`` (a new id if None), so the caller can tell a session
        that is new from one that goes on."""
        ...

    async def note_latest(self, agent_id: str, session_id: str) -> None:
        """The session the agent has just used."""
        ...

    async def latest(self, agent_id: str) -> str | None:
        """The session the agent used last, if within ``CONVERSATION_IDLE_MS``."""
        ...

    def sizes(self) -> dict[str, int]:
        """Entries held in this process's memory, by structure."""
        ...

    async def close(self) -> None: ...


class LocalConversations:
    """Both maps bounded to ``remembered`` entries, least recently used forgotten: a
    forgotten conversation starts a new session, as one idle for too long does."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._remembered = remembered
        self._known: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self._latest: OrderedDict[str, tuple[str, int]] = OrderedDict()

    async def note_latest(self, agent_id: str, session_id: str) -> None:
        self._latest[agent_id] = (session_id, now_ms())
        self._latest.move_to_end(agent_id)
        if len(self._latest) > self._remembered:
            self._latest.popitem(last=False)

    def sizes(self) -> dict[str, int]:
        return {"conversations": len(self._known), "latest_by_agent": len(self._latest)}

    async def latest(self, agent_id: str) -> str | None:
        known = self._latest.get(agent_id)
        if known is None or now_ms() - known[1] >= CONVERSATION_IDLE_MS:
            return None
        return known[0]

    async def session_of(
        self, agent_id: str, conversation: str, proposed: str | None = None
    ) -> str:
        key = (agent_id, conversation)
        at = now_ms()
        known = self._known.get(key)
        session_id = known[0] if known and at - known[1] < CONVERSATION_IDLE_MS else None
        self._known[key] = (session_id or proposed or new_session_id(), at)
        self._known.move_to_end(key)
        if len(self._known) > self._remembered:
            self._known.popitem(last=False)
        return self._known[key][0]

    async def close(self) -> None:
        return None
