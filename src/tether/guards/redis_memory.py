"""The guards' memory in Redis, shared by every process of a fleet.

Each session's watch and each project's breaker is one Redis hash: a version and the
encoded state. A session's key names the encoding's format (``guards:w2:<session>``), so
processes of two releases during a rolling upgrade never read each other's states.

A process keeps the last version it saw of each and applies a change to
that copy, then one Lua script commits it if no other process changed it meanwhile
(optimistic concurrency: one round trip when this process saw the last change, two when
another did). A state left unchanged is only checked, not written. Sessions expire from
Redis after ``ttl_ms`` without a change.

Within a process, a session's changes never race each other: they queue, and what queued
while one commit was under way goes in the next, applied in order (group commit). Only
other processes can make a commit retry, so a burst of one session's parallel calls
(a Claude Code session's subagents) is judged call by call instead of refused.

A commit whose reply was lost is sent once more (``tether.shared_state``) and recognises
itself if it had landed. Redis unreachable: the call is refused
(``guard_state_unavailable``, 503), never allowed unguarded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tether.errors import SharedStateUnavailable
from tether.guards.breaker import CircuitBreaker
from tether.guards.codec import (
    FORMAT,
    decode_breaker,
    decode_watch,
    encode_breaker,
    encode_watch,
)
from tether.guards.memory import Change
from tether.guards.watches import MAX_SESSIONS
from tether.shared_state import connect_redis, sent_again_once

__all__ = ["RedisGuardMemory"]

log = logging.getLogger(__name__)

R = TypeVar("R")

ATTEMPTS = 32
"""Commits tried for one batch. A conflict means another process's commit succeeded
meanwhile (the script is atomic, so some process always wins), and with two busy processes
each try wins about half the time: 8 tries left about one batch in a hundred refused under
a closed loop of one session on two workers (measured), 32 leave it to chance."""
SESSION_TTL_MS = 24 * 3600 * 1000

COMMIT = """
local stale = false
local seen = {}
for i = 1, #KEYS do
  seen[i] = redis.call('HGET', KEYS[i], 'v') or ''
  if seen[i] ~= ARGV[3 * i - 1] then stale = true end
end
if stale then
  local out = {0}
  for i = 1, #KEYS do
    out[#out + 1] = seen[i]
    out[#out + 1] = redis.call('HGET', KEYS[i], 'd') or ''
  end
  return out
end
for i = 1, #KEYS do
  local version = ARGV[3 * i]
  if version ~= '' then
    redis.call('HSET', KEYS[i], 'v', version, 'd', ARGV[3 * i + 1])
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return {1}
"""
"""KEYS: the records. ARGV[1]: their time to live; then per record the version the change
started from, the new version ('' when unchanged: only checked) and the new state."""

_EMPTY = (b"", b"")
UNREACHABLE = "tether cannot reach the guards' shared state (Redis); the call was refused"
STOPPED = "tether is stopping; the guards' shared state was not updated for this call"


@dataclass(slots=True)
class _Pending:
    """One caller's change, waiting for the commit that carries it."""

    change: Change[Any]
    at_ms: int
    breaker_of: str | None
    done: asyncio.Future[Any]

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        if self.done.done():  # its caller left
            return
        if error is not None:
            self.done.set_exception(error)
        else:
            self.done.set_result(result)


class RedisGuardMemory:
    def __init__(self, url: str, prefix: str = "tether:", ttl_ms: int = SESSION_TTL_MS) -> None:
        self._client: aioredis.Redis = connect_redis(url)
        self._commit = self._client.register_script(COMMIT)
        self._prefix = prefix
        self._ttl_ms = ttl_ms
        self._seen: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        """Per key, the last (version, state) this process read or wrote."""
        self._breakers: dict[str, CircuitBreaker] = {}
        self._queues: dict[str, list[_Pending]] = {}
        """Per session, the changes waiting while one commit of them is under way."""
        self._drains: set[asyncio.Task[None]] = set()

    async def ping(self) -> None:
        """Raises ``SharedStateUnavailable`` when Redis does not answer (at start-up)."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise SharedStateUnavailable(f"Redis for the guards does not answer: {exc}") from None

    async def update(
        self, session_id: str, at_ms: int, change: Change[R], breaker_of: str | None = None
    ) -> R:
        key = f"{self._prefix}guards:w{FORMAT}:{session_id}"
        pending = _Pending(change, at_ms, breaker_of, asyncio.get_running_loop().create_future())
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(pending)
        else:
            self._queues[key] = queue = [pending]
            drain = asyncio.create_task(self._drain(key, session_id, queue))
            self._drains.add(drain)
            drain.add_done_callback(functools.partial(self._drain_ended, key, queue))
        return await pending.done  # type: ignore[no-any-return]

    async def _drain(self, key: str, session_id: str, queue: list[_Pending]) -> None:
        """Commits what is queued for a session, batch after batch, until nothing is; a
        task of its own, so a caller that leaves does not strand the others."""
        try:
            while batch := _next_batch(queue):
                try:
                    await self._commit_batch(key, session_id, batch)
                except Exception as exc:
                    log.exception("committing guard state failed")
                    for pending in batch:
                        pending.settle(error=exc)
                except BaseException:
                    for pending in batch:
                        pending.settle(error=SharedStateUnavailable(STOPPED))
                    raise
        finally:
            self._close_queue(key, queue)

    def _drain_ended(self, key: str, queue: list[_Pending], drain: asyncio.Task[None]) -> None:
        """A drain cancelled before it ran never reached its ``finally``."""
        self._drains.discard(drain)
        self._close_queue(key, queue)

    def _close_queue(self, key: str, queue: list[_Pending]) -> None:
        """Done with ``queue`` (the session's next call starts a new one); callers still in
        it are told (none when its drain ran to the end)."""
        if self._queues.get(key) is queue:
            del self._queues[key]
        for pending in queue:
            pending.settle(error=SharedStateUnavailable(STOPPED))

    async def _commit_batch(self, key: str, session_id: str, batch: list[_Pending]) -> None:
        """Applies each change in order to one copy of the records and commits them once;
        on a conflict, again at once from the state the other process left (waiting would
        only let the other process, which does not wait, win again)."""
        breaker_of = next((p.breaker_of for p in batch if p.breaker_of is not None), None)
        keys = [key] if breaker_of is None else [key, f"{self._prefix}guards:b:{breaker_of}"]
        attempts = 0
        while attempts < ATTEMPTS:
            batch[:] = [pending for pending in batch if not pending.done.done()]
            if not batch:
                return
            seen = [self._seen.get(k, _EMPTY) for k in keys]
            watch = decode_watch(seen[0][1], batch[0].at_ms)
            breaker = decode_breaker(seen[1][1]) if breaker_of is not None else None
            results: list[Any] = []
            failed = _first_failed(batch, watch, breaker, results)
            if failed is not None:
                del batch[failed]  # its caller has the error; the others start over
                continue
            attempts += 1
            states = [encode_watch(watch)]
            if breaker is not None:
                states.append(encode_breaker(breaker))
            args: list[Any] = [self._ttl_ms]
            written: list[tuple[bytes, bytes] | None] = []
            for (version, old), new in zip(seen, states, strict=True):
                fresh = secrets.token_bytes(8).hex().encode() if new != old else b""
                args += [version, fresh, new if fresh else b""]
                written.append((fresh, new) if fresh else None)
            try:
                commit = functools.partial(self._commit, keys=keys, args=args)
                reply = await sent_again_once(commit)
            except (RedisError, OSError) as exc:
                log.warning("guard state in Redis unavailable: %s", exc)
                for pending in batch:
                    pending.settle(error=SharedStateUnavailable(UNREACHABLE))
                return
            if reply[0] == 1 or _landed(reply, written):
                for k, done in zip(keys, written, strict=True):
                    if done is not None:
                        self._remember(k, done)
                if breaker is not None:
                    self._breakers[breaker_of or ""] = breaker
                for pending, result in zip(batch, results, strict=True):
                    pending.settle(result)
                return
            for index, k in enumerate(keys):
                self._remember(k, (reply[1 + 2 * index], reply[2 + 2 * index]))
        busy = f"session {session_id}'s guard state kept changing under this call; refused"
        for pending in batch:
            pending.settle(error=SharedStateUnavailable(busy))

    def _remember(self, key: str, seen: tuple[bytes, bytes]) -> None:
        self._seen[key] = seen
        self._seen.move_to_end(key)
        if len(self._seen) > MAX_SESSIONS:
            self._seen.popitem(last=False)

    def remembered(self) -> int:
        return len(self._seen)

    def open_breakers(self, at_ms: int) -> int:
        return sum(1 for breaker in self._breakers.values() if breaker.wait_ms(at_ms))

    async def close(self) -> None:
        await self._client.aclose()


def _next_batch(queue: list[_Pending]) -> list[_Pending]:
    """The waiting changes that can commit together, taken off ``queue``: all of them, but
    those naming a breaker only with others naming the same one (a session has one
    project, so in practice all)."""
    waiting = [pending for pending in queue if not pending.done.done()]
    breaker_of = next((p.breaker_of for p in waiting if p.breaker_of is not None), None)
    batch = [p for p in waiting if p.breaker_of in (None, breaker_of)]
    queue[:] = [p for p in waiting if p.breaker_of not in (None, breaker_of)]
    return batch


def _landed(reply: list[Any], written: list[tuple[bytes, bytes] | None]) -> bool:
    """A commit refused as stale that finds a record it writes at the version it writes:
    its first sending had landed and only the reply was lost (the script writes every
    record at once, and versions are random, so no other commit leaves them; the
    project's breaker may have moved on since). Should another process commit both of
    them in between, the change is applied twice: one call counted twice."""
    return any(
        done is not None and reply[1 + 2 * index] == done[0] for index, done in enumerate(written)
    )


def _first_failed(
    batch: list[_Pending], watch: Any, breaker: CircuitBreaker | None, results: list[Any]
) -> int | None:
    """Runs the batch's changes in order on one copy, their results into ``results``;
    each sees the breaker only if it asked for it. The index of the first that raised (its
    caller told), None when none did."""
    for index, pending in enumerate(batch):
        try:
            seen_breaker = breaker if pending.breaker_of is not None else None
            results.append(pending.change(watch, seen_breaker))
        except Exception as exc:
            pending.settle(error=exc)
            return index
    return None
