"""Which session a caller that names none is in: a model call's is its conversation's
(the agent and a digest of how the conversation began), the same while it goes on, a new
one after it was idle for ``CONVERSATION_IDLE_MS``; a cloud call joins the agent's latest
session, if it was active that recently.

In memory for one process; in Redis (``TETHER_REDIS_URL``) for a fleet, so that a script's
requests spread over workers or replicas are one session and its loop trips the guards at
the same call. Redis unreachable: the call is refused (fail closed), as the guards are.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tether.clock import new_uuid7, now_ms
from tether.errors import SharedStateUnavailable
from tether.shared_state import connect_redis, sent_again_once

__all__ = [
    "CONVERSATION_IDLE_MS",
    "Conversations",
    "LocalConversations",
    "RedisConversations",
    "new_session_id",
]

log = logging.getLogger(__name__)

CONVERSATION_IDLE_MS = 30 * 60 * 1000
"""A conversation silent this long starts a new session when it speaks again (a script
run again tomorrow with the same prompt is a new run, not the old session)."""
REMEMBERED = 100_000

SESSION_OF = """
local session = redis.call('GET', KEYS[1])
if not session then
  session = ARGV[1]
  redis.call('SET', KEYS[1], session)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return session
"""
"""KEYS[1]: the conversation. ARGV: the session to start if it has none, the idle time."""


def new_session_id() -> str:
    """UUID-shaped (the audit trail skips its secret scan for those), time-ordered: a
    client that names no session starts one per conversation, and its row and budget
    period are then added at the end of their indexes."""
    return new_uuid7()


LATEST_REWRITE_MS = 60_000
"""An agent's latest session, unchanged, is written again this often (keeping it alive)."""


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


class RedisConversations:
    """One Redis key per conversation, holding its session and expiring when idle: one
    round trip per call of a caller that names no session (none for those that do)."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client: aioredis.Redis = connect_redis(url)
        self._session_of = self._client.register_script(SESSION_OF)
        self._prefix = prefix
        self._written: dict[str, tuple[str, int]] = {}
        """Per agent, the latest session this process wrote and when."""

    async def session_of(
        self, agent_id: str, conversation: str, proposed: str | None = None
    ) -> str:
        digest = hashlib.blake2b(f"{agent_id}\0{conversation}".encode(), digest_size=16)
        key = f"{self._prefix}conversation:{digest.hexdigest()}"
        args: list[str | int] = [proposed or new_session_id(), CONVERSATION_IDLE_MS]
        session = await self._ask(lambda: self._session_of(keys=[key], args=args))
        return _text(session) or ""

    async def note_latest(self, agent_id: str, session_id: str) -> None:
        """Written when it changes (or a minute after the last write): a Claude Code session
        costs one round trip at its first call, not one per call."""
        at = now_ms()
        written = self._written.get(agent_id)
        if written and written[0] == session_id and at - written[1] < LATEST_REWRITE_MS:
            return
        key = f"{self._prefix}latest:{agent_id}"
        await self._ask(lambda: self._client.set(key, session_id, px=CONVERSATION_IDLE_MS))
        self._written[agent_id] = (session_id, at)
        if len(self._written) > REMEMBERED:
            self._written.pop(next(iter(self._written)))

    def sizes(self) -> dict[str, int]:
        return {"latest_written": len(self._written)}

    async def latest(self, agent_id: str) -> str | None:
        key = f"{self._prefix}latest:{agent_id}"
        return _text(await self._ask(lambda: self._client.get(key)))

    @staticmethod
    async def _ask(command: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await sent_again_once(command)
        except (RedisError, OSError) as exc:
            log.warning("sessions in Redis unavailable: %s", exc)
            raise SharedStateUnavailable(
                "tether cannot reach the fleet's shared state (Redis) to find which session "
                "this call belongs to; the call was refused"
            ) from None

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
