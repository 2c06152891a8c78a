"""Bytes each per-session structure holds per entry (tracemalloc), filled as the soak's
sessions fill them: what ``TETHER_SESSIONS_IN_MEMORY`` costs at its bound.

    uv run python bench/memory_per_session.py
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid
from collections import OrderedDict
from collections.abc import Callable

from tether.guards.watches import SessionWatches
from tether.sessions.conversations import LocalConversations
from tether.store.records import SessionRecord, SessionState

N = 20_000


def per_entry(fill: Callable[[], object]) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / N


def conversations() -> object:
    async def fill() -> LocalConversations:
        index = LocalConversations(remembered=2 * N)
        for i in range(N):
            await index.session_of(f"agent-{i % 50}", uuid.uuid4().hex)
        return index

    return asyncio.run(fill())


def session_cache() -> object:
    now = int(time.time() * 1000)
    cache: OrderedDict[str, SessionRecord] = OrderedDict()
    for _ in range(N):
        sid = str(uuid.uuid4())
        cache[sid] = SessionRecord(
            sid, uuid.uuid4().hex, uuid.uuid4().hex, SessionState.ACTIVE, now, now,
            0, 0, 0, 0, 0, 0, None, None, None,
        )  # fmt: skip
    return cache


def guard_watches(calls: int, tools: int) -> Callable[[], object]:
    def fill() -> object:
        watches = SessionWatches(kept=2 * N)
        now = int(time.time() * 1000)
        for _ in range(N):
            watch = watches.of(str(uuid.uuid4()), now)
            for _ in range(calls):
                watch.occurrences(uuid.uuid4().hex * 2, now, 300_000, 20)
            for _ in range(tools):
                tool_use, call = f"toolu_{uuid.uuid4().hex[:24]}", uuid.uuid4().hex * 2
                watch.asked_for(tool_use, call)
                watch.answer(tool_use, call, uuid.uuid4().hex * 2, now)
        return watches

    return fill


def main() -> None:
    rows = [
        ("session cache (TETHER_SESSIONS_IN_MEMORY entries)", session_cache),
        ("conversation index (as many)", conversations),
        ("guard memory, a 3-call Claude Code session (half as many)", guard_watches(3, 0)),
        ("guard memory, a 2-turn SDK conversation", guard_watches(2, 0)),
        ("guard memory, a 40-call tool loop", guard_watches(40, 40)),
    ]
    for name, fill in rows:
        print(f"  {name:<60} {per_entry(fill):8,.0f} bytes")


if __name__ == "__main__":
    main()
