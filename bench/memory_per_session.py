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

from tether.guards.fingerprints import (
    request_fingerprint,
    result_fingerprint,
    tool_use_fingerprint,
)
from tether.guards.watches import SessionWatches
from tether.records.fleet import SessionRecord, SessionState
from tether.sessions.conversations import LocalConversations

N = 20_000


def per_entry(fill: Callable[[], object], entries: int = N) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / entries


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


def guard_watches(calls: int, tools: int, sessions: int = N) -> Callable[[], object]:
    """``calls`` requests, each a different body, and ``tools`` tool calls asked for and
    answered, as the guards record them (fingerprints as ``fingerprints.py`` makes them)."""

    def fill() -> object:
        watches = SessionWatches(kept=2 * sessions)
        now = int(time.time() * 1000)
        for _ in range(sessions):
            watch = watches.of(str(uuid.uuid4()), now)
            for _ in range(calls):
                watch.occurrences(request_fingerprint(uuid.uuid4().bytes), now, 300_000, 21)
            for _ in range(tools):
                tool_use = f"toolu_{uuid.uuid4().hex[:24]}"
                call = tool_use_fingerprint("Bash", uuid.uuid4().hex)
                watch.asked_anew(call, now, 600_000)
                watch.asked_for(tool_use, call)
                watch.answer(tool_use, call, result_fingerprint(uuid.uuid4().hex), now)
        return watches

    return fill


def main() -> None:
    rows = [
        ("session cache (TETHER_SESSIONS_IN_MEMORY entries)", session_cache),
        ("conversation index (as many)", conversations),
        ("guard memory, a 3-call Claude Code session (half as many)", guard_watches(3, 0)),
        ("guard memory, a 2-turn SDK conversation", guard_watches(2, 0)),
        ("guard memory, a 40-call tool loop", guard_watches(40, 40)),
        ("guard memory, a 1,000-call tool loop (every cap full)", guard_watches(1000, 1000, 200)),
    ]
    for name, fill in rows:
        entries = 200 if "1,000-call" in name else N
        print(f"  {name:<60} {per_entry(fill, entries):8,.0f} bytes")


if __name__ == "__main__":
    main()
