"""``fdatasync`` of SQLite's WAL by a helper process, for commits made on the event loop's
thread (``SqliteWriter``'s brief batches).

On a busy machine a thread woken to commit or sync waits for a core and then for the
interpreter lock the event loop holds: measured at 1,000 req/s on two cores, 1.44 ms from
handing a batch to the writer thread to the thread's first line, three times the commit.
A helper process has its own interpreter: the loop writes a byte down a pipe after its
commit, the helper syncs and answers, and the answer arrives as an ordinary pipe read on
the loop. The batch's callers hear back only after that answer, so a commit made this way
is as durable as one made with ``synchronous=FULL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import cast

from tether.store import wal_sync_helper

__all__ = ["WAL_SYNC_BUCKETS", "WalSyncer", "WalSyncerGone"]

log = logging.getLogger(__name__)

HELPER = Path(wal_sync_helper.__file__)
START_SECONDS = 10.0
STOP_SECONDS = 5.0
WAL_SYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1.0, 5.0)
"""Upper bounds (seconds) of ``tether_sqlite_wal_sync_seconds``: a disk's stall included."""
STALL_SECONDS = 30.0
"""A sync left unanswered this long: the helper is taken for stuck (stopped, or frozen)
and killed, and the commits waiting for it are synced by the writer thread, as when it
exits. Every brief commit waits for the one before it to be synced, so without this a
stopped helper would hold every write of the process, a kill switch's included."""


class WalSyncerGone(OSError):
    """The helper exited before answering: the WAL is not known to be synced."""


SyncDone = Callable[[OSError | None], None]


class _HelperProtocol(asyncio.SubprocessProtocol):
    def __init__(self, syncer: WalSyncer) -> None:
        self._syncer = syncer

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == 1:
            self._syncer._answered(cast(bytes, data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._syncer._gone()

    def process_exited(self) -> None:
        self._syncer._gone()


class WalSyncer:
    """One helper process syncing ``wal_path``. ``sync`` asks for a sync of everything
    written to the WAL so far and calls ``then`` once it is done (None), failed
    (``OSError``) or cannot be known (``WalSyncerGone``: the helper exited; ``alive`` is
    then False for good)."""

    def __init__(self, wal_path: str, stall_seconds: float = STALL_SECONDS) -> None:
        self._wal_path = wal_path
        self._stall_seconds = stall_seconds
        self._watch: asyncio.TimerHandle | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._requests: asyncio.WriteTransport | None = None
        self._waiting: deque[tuple[SyncDone, float]] = deque()
        self._ready: asyncio.Future[None] | None = None
        self.alive = False
        self.synced = 0
        """Syncs answered so far."""
        self.on_answer: Callable[[float], None] | None = None
        """Told how long each answered sync took, from the request written to the answer
        read: the helper's wake-up and the disk's ``fdatasync``."""

    async def start(self) -> None:
        """Start the helper; raises ``OSError`` if it could not be started or did not say
        it was ready within ``START_SECONDS``."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        transport, _ = await loop.subprocess_exec(
            lambda: _HelperProtocol(self),
            sys.executable, "-I", str(HELPER), self._wal_path,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
        )  # fmt: skip
        self._transport = transport
        self._requests = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_SECONDS)
        except (TimeoutError, WalSyncerGone) as exc:
            await self.close()
            if self._ready.done() and not self._ready.cancelled():
                self._ready.exception()
            raise OSError(f"the WAL sync helper did not start: {exc!r}") from exc
        self.alive = True

    def sync(self, then: SyncDone) -> None:
        if not self.alive or self._requests is None:
            then(WalSyncerGone("the WAL sync helper is not running"))
            return
        self._waiting.append((then, time.perf_counter()))
        self._requests.write(b"s")
        if self._watch is None:
            self._watch = asyncio.get_running_loop().call_later(
                self._stall_seconds, self._check_stalled
            )

    def _check_stalled(self) -> None:
        """Kill a helper whose oldest unanswered sync is ``stall_seconds`` old; else look
        again when it would be."""
        self._watch = None
        if not self._waiting or not self.alive:
            return
        waited = time.perf_counter() - self._waiting[0][1]
        if waited < self._stall_seconds:
            self._watch = asyncio.get_running_loop().call_later(
                self._stall_seconds - waited, self._check_stalled
            )
            return
        log.error(
            "the WAL sync helper (pid %s) has not answered a sync for %.1f s: it is killed, "
            "and commits go through the writer thread from now on",
            self.pid(),
            waited,
        )
        self.alive = False
        if self._transport is not None:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()
        self._gone()

    def _answered(self, data: bytes) -> None:
        if self._ready is not None and not self._ready.done():
            if data[:1] != wal_sync_helper.READY:
                self._ready.set_exception(WalSyncerGone(f"the helper said {data[:16]!r}"))
                return
            self._ready.set_result(None)
            data = data[1:]
        for answer in data:
            if not self._waiting:
                break
            then, asked_at = self._waiting.popleft()
            if self.on_answer is not None:
                self.on_answer(time.perf_counter() - asked_at)
            if answer == wal_sync_helper.SYNCED[0]:
                self.synced += 1
                then(None)
            else:
                then(OSError(f"the WAL {self._wal_path} could not be synced"))

    def _gone(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.alive:
            log.warning("the WAL sync helper exited; commits go through the writer thread")
        self.alive = False
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(WalSyncerGone("the WAL sync helper exited"))
        while self._waiting:
            then, _ = self._waiting.popleft()
            then(WalSyncerGone("the WAL sync helper exited before answering"))

    def pid(self) -> int | None:
        return self._transport.get_pid() if self._transport is not None else None

    async def close(self) -> None:
        """Close the helper's input (it exits on its own) and wait for it to exit."""
        transport, self._transport = self._transport, None
        self.alive = False
        if transport is None:
            return
        if self._requests is not None:
            self._requests.close()
        for _ in range(int(STOP_SECONDS / 0.01)):
            if transport.get_returncode() is not None:
                break
            await asyncio.sleep(0.01)
        else:
            with contextlib.suppress(ProcessLookupError):
                transport.kill()
        transport.close()
        self._gone()
