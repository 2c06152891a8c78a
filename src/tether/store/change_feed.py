"""Delivers the change log to in-memory caches in this process, from any replica.

PostgreSQL wakes the feed with LISTEN/NOTIFY; a short poll runs on both backends as
well, so a dropped listener or SQLite shared by several processes still converges
within ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tether.clock import now_ms
from tether.errors import TetherError
from tether.store.changes import (
    CHANNEL,
    Change,
    newest_change_ids,
    prune_changes,
    read_changes,
)
from tether.store.database import Database
from tether.store.driver_errors import CONNECTION_ERRORS
from tether.store.missing_changes import MissingChanges

__all__ = ["ChangeFeed", "ChangeHandler"]

log = logging.getLogger(__name__)

ChangeHandler = Callable[[Change], Awaitable[None]]

PAGE = 1_000
"""Changes read a statement."""
RETENTION_MS = 3_600_000
MISSING_WAIT_SECONDS = 300.0
"""How long an id the feed has passed over is looked for: PostgreSQL gives a change its id
when the row is inserted, and the transaction may commit later (a stalled network, a lock
waited for). One never committed (rolled back) is forgotten after this."""
START_LOOKBACK_IDS = 1_000
"""At start, the ids this far below the newest that are not there yet are looked for: a
transaction that took one may commit after the feed has started."""


class ChangeFeed:
    def __init__(self, db: Database, poll_seconds: float = 0.25) -> None:
        self._db = db
        self._poll_seconds = poll_seconds
        self._handlers: list[ChangeHandler] = []
        self._last_id = 0
        self._missing = MissingChanges()
        """Ids passed over that a transaction may still commit."""
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Any = None
        self._caught_up_at = 0
        self._marked = False

    def subscribe(self, handler: ChangeHandler) -> None:
        self._handlers.append(handler)

    async def mark(self) -> None:
        """Where to follow from: call before the caches load, so a change committed while
        they do is applied when the feed starts (its handlers apply a change twice as
        once). The ids among the newest that have not committed yet are looked for."""
        async with self._db.read() as conn:
            present = await newest_change_ids(conn, START_LOOKBACK_IDS)
        newest = present[-1] if present else 0
        self._last_id = newest
        at, low = time.monotonic(), max(0, newest - START_LOOKBACK_IDS) + 1
        for change_id in present:
            self._missing.note(low, change_id - 1, at)
            low = change_id + 1
        self._marked = True

    async def start(self) -> None:
        """Apply what changed since ``mark`` (history before it is skipped: the caches
        loaded fresh), then follow new changes."""
        if not self._marked:
            await self.mark()
        try:
            await self.catch_up()
        except TetherError as exc:
            log.warning("change feed paused: %s", exc.message)
        self._tasks.append(asyncio.create_task(self._follow(), name="change-feed"))
        if self._db.is_postgres:
            self._tasks.append(asyncio.create_task(self._listen(), name="change-listener"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def wake(self) -> None:
        """Catch up soon, off the caller's path (a change this process applied itself)."""
        self._wake.set()

    async def catch_up(self) -> None:
        """Apply every change committed so far; writers call it to see their own changes.
        A page at a time: a burst of changes (a bulk deletion's approvals) must not hold
        back a kill committed after it."""
        async with self._lock:
            past = 0
            while True:
                async with self._db.read() as conn:
                    changes = await read_changes(
                        conn, self._last_id, self._missing.ranges(), PAGE, past
                    )
                await self._apply(changes)
                if len(changes) < PAGE:
                    break
                past = changes[-1].id
            self._missing.forget_before(time.monotonic() - MISSING_WAIT_SECONDS)
            self._caught_up_at = now_ms()

    async def _apply(self, changes: list[Change]) -> None:
        """A change a handler failed on stays to be read again: past the last applied, or
        still missing."""
        for change in changes:
            if change.id > self._last_id:
                self._missing.note(self._last_id + 1, change.id - 1, time.monotonic())
            elif change.id not in self._missing:
                continue
            for handler in self._handlers:
                await handler(change)
            self._missing.landed(change.id)
            self._last_id = max(self._last_id, change.id)

    def missing(self) -> int:
        """Ids passed over that a transaction may yet commit (looked for at each read)."""
        return len(self._missing)

    def problem(self) -> str | None:
        """Why this replica may be missing kills and policy changes (for readiness), or
        None: it is following and caught up within a few poll intervals."""
        if not self._tasks or self._tasks[0].done():
            return "the change feed is not running"
        behind_ms = now_ms() - self._caught_up_at
        if behind_ms > max(5_000, 20 * self._poll_seconds * 1000):
            return f"the change feed has not caught up for {behind_ms / 1000:.0f} s"
        return None

    async def _follow(self) -> None:
        last_prune = now_ms()
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
                if now_ms() - last_prune > RETENTION_MS / 4:
                    async with self._db.write() as conn:
                        await prune_changes(conn, now_ms() - RETENTION_MS)
                    last_prune = now_ms()
            except TetherError as exc:
                log.warning("change feed paused: %s", exc.message)
            except Exception:
                log.exception("change feed failed to apply a change")

    async def _listen(self) -> None:
        dsn = (
            make_url(self._db.url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        while True:
            try:
                connection = await asyncpg.connect(dsn, timeout=3)
            except CONNECTION_ERRORS:
                await asyncio.sleep(1)
                continue
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                await connection.add_listener(CHANNEL, lambda *_args: self._wake.set())
                self._wake.set()
                await lost.wait()
            except CONNECTION_ERRORS:
                pass
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)
            await asyncio.sleep(0.5)
