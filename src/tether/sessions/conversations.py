"""Which session a caller that names none is in: its conversation's (the agent and a
digest of how the conversation began), the same while it goes on, a new one after it was
idle for ``CONVERSATION_IDLE_MS``.

In memory for one process; in Redis (``TETHER_REDIS_URL``) for a fleet, so that a script's
requests spread over workers or replicas are one session and its loop trips the guards at
the same call. Redis unreachable: the call is refused (fail closed), as the guards are.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import OrderedDict
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tether.guards.redis_memory import TIMEOUT_SECONDS, GuardStateUnavailable
from tether.store.clock import now_ms

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
    return str(uuid.uuid4())


class Conversations(Protocol):
    async def session_of(self, agent_id: str, conversation: str) -> str: ...

    async def close(self) -> None: ...


class LocalConversations:
    def __init__(self) -> None:
        self._known: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    async def session_of(self, agent_id: str, conversation: str) -> str:
        key = (agent_id, conversation)
        at = now_ms()
        known = self._known.get(key)
        session_id = known[0] if known and at - known[1] < CONVERSATION_IDLE_MS else None
        self._known[key] = (session_id or new_session_id(), at)
        self._known.move_to_end(key)
        if len(self._known) > REMEMBERED:
            self._known.popitem(last=False)
        return self._known[key][0]

    async def close(self) -> None:
        return None


class RedisConversations:
    """One Redis key per conversation, holding its session and expiring when idle: one
    round trip per call of a caller that names no session (none for those that do)."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self._session_of = self._client.register_script(SESSION_OF)
        self._prefix = prefix

    async def session_of(self, agent_id: str, conversation: str) -> str:
        digest = hashlib.blake2b(f"{agent_id}\0{conversation}".encode(), digest_size=16)
        key = f"{self._prefix}conversation:{digest.hexdigest()}"
        try:
            session = await self._session_of(
                keys=[key], args=[new_session_id(), CONVERSATION_IDLE_MS]
            )
        except (RedisError, OSError) as exc:
            log.warning("conversations in Redis unavailable: %s", exc)
            raise GuardStateUnavailable(
                "tether cannot reach the fleet's shared state (Redis) to find this "
                "conversation's session; the call was refused"
            ) from None
        return session.decode() if isinstance(session, bytes) else str(session)

    async def close(self) -> None:
        await self._client.aclose()
