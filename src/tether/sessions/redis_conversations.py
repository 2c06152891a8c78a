"""Conversations in Redis (``TETHER_REDIS_URL``) for a fleet, so that a script's requests
spread over workers or replicas are one session and its loop trips the guards at the same
call. Redis unreachable: the call is refused (fail closed), as the guards are.

Imported only when Redis is configured: a single process does without its client library.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tether.clock import now_ms
from tether.errors import SharedStateUnavailable
from tether.sessions.conversations import CONVERSATION_IDLE_MS, REMEMBERED, new_session_id
from tether.shared_state import connect_redis, sent_again_once

__all__ = ["RedisConversations"]

log = logging.getLogger(__name__)

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


LATEST_REWRITE_MS = 60_000
"""An agent's latest session, unchanged, is written again this often (keeping it alive)."""


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
