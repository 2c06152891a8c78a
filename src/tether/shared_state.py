"""The fleet's shared state in Redis: one way to connect, and one way to ask it that a
stalled event loop or a dropped connection does not turn into a refused call.

A read that times out has often been answered already: when the loop stalls past the
timeout (a CPU-starved container, a long GC pause), the timeout fires before the reply
sitting in the socket is read. A connection dropped after a command was sent (Redis
restarted, an idle connection cut by a firewall) leaves the same doubt. So a command
is sent once more, on a fresh connection; every command tether sends is safe to repeat
(reads, idempotent writes, and the guards' versioned commit, which recognises its own).
Twice unanswered is Redis unreachable: the caller refuses the call (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tether.errors import REDIS_TIMEOUT_SECONDS

__all__ = ["connect_redis", "sent_again_once"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def connect_redis(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )


async def sent_again_once(command: Callable[[], Awaitable[T]]) -> T:
    """``command()``, and once more if its reply was lost; errors other than a lost reply,
    and a second loss, reach the caller."""
    try:
        return await command()
    except (RedisTimeoutError, RedisConnectionError, TimeoutError, ConnectionError) as exc:
        log.warning("Redis did not answer (%s); sending the command once more", exc)
    return await command()
