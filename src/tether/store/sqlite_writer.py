"""One writer thread and connection for SQLite's hot-path writes (audit, budgets).

SQLite has a single writer; sending every hot-path write through one thread means they
never wait on each other's locks (whose busy handler sleeps in milliseconds), and each
write costs one thread hand-off instead of the several an async ORM round trip takes.
WAL checkpoints, which fsync, run in their own thread (``SqliteCheckpointer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from tether.errors import StoreUnavailable
from tether.store.wal_sync import STALL_SECONDS, WalSyncer, WalSyncerGone

__all__ = [
    "HANDOFF_BUCKETS",
    "SYNCHRONOUS_MODES",
    "Queued",
    "SqliteCheckpointer",
    "SqliteWriter",
    "open_sqlite",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
CHECKPOINT_SECONDS = 0.5
MAX_BATCH = 256
MAX_BRIEF_BATCH = 32
"""At most this many brief pieces commit together on the event loop's thread; a longer
queue (a backlog) goes to the writer thread, so the loop is never held for long."""
WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""A WAL larger than this is truncated by the next checkpoint that can reach its end;
without it, readers that always overlap the checkpoints let the file grow without bound
(seen: 999 MB under sustained load)."""
TRUNCATE_WAIT_MS = 200
RESTART_BYTES = 4 * 1024 * 1024
"""A WAL this large is restarted (written again from its start) once fully copied."""
RESTART_TRIES = 10
RESTART_RETRY_SECONDS = 0.003
HANDOFF_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1)
"""Upper bounds (seconds) of ``tether_sqlite_writer_handoff_seconds`` and
``tether_sqlite_writer_loop_commit_seconds``."""
SYNCHRONOUS_MODES = ("FULL", "NORMAL")
"""FULL (the default) fsyncs the WAL at every commit, so an answered decision survives a
power loss; NORMAL fsyncs only at checkpoints (faster, but the last commits before a
power loss can vanish; a crash of tether alone loses nothing either way)."""


def open_sqlite(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


class SqliteCheckpointer:
    """Runs ``wal_checkpoint(PASSIVE)`` twice a second on its own connection and thread;
    PASSIVE never blocks the writers. Measured at 300 req/s, automatic checkpoints on the
    commit path stalled every ~400th commit by 4-8 ms, most of the gateway's P99. Then it
    restarts the WAL in place (``_restart``). Should the WAL still outgrow
    ``WAL_LIMIT_BYTES`` it tries a TRUNCATE, waiting at most ``TRUNCATE_WAIT_MS`` for
    readers, so the file stays bounded under constant traffic."""

    def __init__(
        self,
        path: str,
        interval: float = CHECKPOINT_SECONDS,
        wal_limit: int = WAL_LIMIT_BYTES,
        restart_bytes: int = RESTART_BYTES,
    ) -> None:
        self._path = path
        self._wal = f"{os.path.realpath(path)}-wal"
        self._interval = interval
        self._wal_limit = wal_limit
        self._restart_bytes = restart_bytes
        self.begun = 0
        """Checkpoints begun so far (counted before each starts)."""
        self.ended = 0
        """Checkpoints ended so far: while ``begun`` is ahead, one is under way."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self._wal)
        except OSError:
            return 0

    def _run(self) -> None:
        conn = open_sqlite(self._path)
        try:
            while not self._stop.wait(self._interval):
                self.begun += 1
                try:
                    with contextlib.suppress(sqlite3.Error):
                        self._checkpoint(conn)
                finally:
                    self.ended += 1
            self._last_checkpoint(conn)
        finally:
            conn.close()

    @staticmethod
    def _last_checkpoint(conn: sqlite3.Connection) -> None:
        """At exit, the WAL is emptied if readers let it be within ``TRUNCATE_WAIT_MS``: a
        read left open elsewhere (a dashboard query, another process) held the exit for the
        whole 5 s busy timeout. What stays in the WAL is committed; the next start's
        checkpoints copy it."""
        with contextlib.suppress(sqlite3.Error):
            _truncate(conn)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        if self._wal_bytes() > self._wal_limit:
            _truncate(conn)
            return
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and frames == copied and self._wal_bytes() >= self._restart_bytes:
            self._restart(conn)

    def _restart(self, conn: sqlite3.Connection) -> None:
        """A writer starts the WAL over only if it begins when every frame is already in
        the database, which under constant commits it never does: the file then grows
        until a TRUNCATE takes the write lock for tens of ms. So once a PASSIVE has copied
        everything, the checkpointer restarts the WAL itself, in place: a few tries that
        never wait, since waiting would hold the write lock while readers finish."""
        conn.execute("PRAGMA busy_timeout=0")
        for _ in range(RESTART_TRIES):
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if not busy or self._stop.wait(RESTART_RETRY_SECONDS):
                return


def _database_file(conn: sqlite3.Connection) -> str:
    """The main database's file as SQLite opened it (symbolic links followed): its WAL is
    beside it."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file)
    raise sqlite3.OperationalError("no main database")


_fdatasync = getattr(os, "fdatasync", os.fsync)


def _truncate(conn: sqlite3.Connection) -> None:
    """Copy the whole WAL into the database and empty it, waiting for readers at most
    ``TRUNCATE_WAIT_MS``."""
    conn.execute(f"PRAGMA busy_timeout={TRUNCATE_WAIT_MS}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@dataclass(slots=True)
class _Work:
    run: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any]
    brief: bool = False
    result: Any = None
    error: BaseException | None = None


def _settle(batch: list[_Work]) -> None:
    for work in batch:
        if work.done.done():
            continue
        if work.error is not None:
            work.done.set_exception(work.error)
        else:
            work.done.set_result(work.result)


def _ran(conn: sqlite3.Connection, work: _Work) -> bool:
    """Run one piece; False if it raised (its error kept on it). Raises when SQLite rolled
    the transaction back itself (a full disk, an I/O error)."""
    try:
        work.result = work.run(conn)
    except BaseException as exc:
        work.error = exc
        if not conn.in_transaction:
            raise sqlite3.OperationalError(f"the transaction was rolled back: {exc}") from exc
        return False
    return True


def _run_alone(conn: sqlite3.Connection, work: _Work) -> bool:
    """A piece alone is the transaction: undone by rolling it back."""
    if _ran(conn, work):
        return True
    conn.execute("ROLLBACK")
    return False


def _run_together(conn: sqlite3.Connection, batch: list[_Work]) -> bool:
    """Every piece, one after the other; False at the first that raises, nothing kept of
    any (the caller undoes the batch and runs each again)."""
    for work in batch:
        if not _ran(conn, work):
            for done in batch:
                done.result = done.error = None
            return False
    return True


def _run_each(conn: sqlite3.Connection, batch: list[_Work]) -> None:
    """Each piece in a savepoint of its own, undone alone if it raises."""
    for work in batch:
        conn.execute("SAVEPOINT work")
        if not _ran(conn, work):
            conn.execute("ROLLBACK TO work")
        conn.execute("RELEASE work")


class Queued(Generic[T]):
    """A piece of work waiting for the writer's next transaction (``SqliteWriter.queue``).
    ``result`` starts that transaction if nothing else has, and returns once the piece is
    committed, or raises (``StoreUnavailable`` for the database's errors) if it was not."""

    def __init__(self, writer: SqliteWriter, work: _Work) -> None:
        self._writer = writer
        self._work = work

    def done(self) -> bool:
        return self._work.done.done()

    def add_done_callback(self, callback: Callable[[asyncio.Future[Any]], None]) -> None:
        self._work.done.add_done_callback(callback)

    async def result(self) -> T:
        if not self.done():
            self._writer._start()
        return cast(T, await self._writer._outcome(self._work))


class SqliteWriter:
    """Group commit: what callers hand in while a commit is under way is run together in
    the next transaction (one piece that raises undoes only itself: ``_run_pieces``), with
    one commit and one wake-up of the event loop for all of them.
    A caller hears back only after the commit that made its piece durable."""

    def __init__(
        self,
        path: str,
        synchronous: str = "FULL",
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        wal_sync_stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._wal_sync_stall_seconds = wal_sync_stall_seconds
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._checkpointer = SqliteCheckpointer(path, checkpoint_seconds)
        self._checkpointer.start()
        self._closed = False
        self._lock = threading.Lock()
        self._queue: list[_Work] = []
        self._draining = False
        self.commits = 0
        """Transactions committed so far (``tether_sqlite_writer_commits``)."""
        self.pieces = 0
        """Pieces of work those transactions carried."""
        self.on_handoff: Callable[[float], None] | None = None
        """Told, on the writer's thread, how long each wake-up of the idle thread took: from
        work handed to it to the thread running it, waking it and then its wait for the
        interpreter lock a busy event loop holds. Under load that wait is most of a
        decision's commit (``tether_sqlite_writer_handoff_seconds``; ``bench/tails.py``)."""
        self._handed_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_conn: sqlite3.Connection | None = None
        self._syncer: WalSyncer | None = None
        self._wal_path = f"{os.path.realpath(path)}-wal"
        self._loop_off = False
        self._restart_cleared = 0
        """Checkpoints (``SqliteCheckpointer.ended``) a commit on the thread has followed."""
        self.loop_commits = 0
        """Of ``commits``, those made on the event loop's thread."""
        self.on_loop_commit: Callable[[float], None] | None = None
        """Told how long each transaction on the loop's thread held the loop, from its
        ``BEGIN`` to its ``COMMIT`` (``tether_sqlite_writer_loop_commit_seconds``)."""
        self.on_wal_sync: Callable[[float], None] | None = None
        """Told how long each sync of a loop commit took the helper process, from asking
        to its answer (``tether_sqlite_wal_sync_seconds``): the disk's share of a commit."""

    async def commit_on_loop(self) -> None:
        """From now on, brief batches (``queue(brief=True)``) commit on this event loop's
        thread, synced by a helper process (``WalSyncer``) when ``synchronous`` is FULL:
        no thread to wake, and no wait for the interpreter lock, on a decision's path.
        Work that is not brief, a backlog, or a batch finding the write lock taken by
        another connection still goes to the writer thread. Without the helper (it could
        not start, or exited) every batch goes to the thread, as before."""
        if self._loop_conn is not None:
            return
        conn = open_sqlite(self._path, "NORMAL")
        conn.execute("PRAGMA busy_timeout=0")
        self._wal_path = f"{_database_file(conn)}-wal"
        if self._synchronous == "FULL":
            syncer = WalSyncer(self._wal_path, self._wal_sync_stall_seconds)
            try:
                await syncer.start()
            except OSError as exc:
                conn.close()
                log.warning("commits stay on the SQLite writer thread: %s", exc)
                return
            syncer.on_answer = self._wal_synced
            self._syncer = syncer
        self._loop, self._loop_conn = asyncio.get_running_loop(), conn

    def _wal_synced(self, seconds: float) -> None:
        if self.on_wal_sync is not None:
            self.on_wal_sync(seconds)

    @property
    def wal_syncs(self) -> int:
        """Syncs of the WAL the helper process has answered."""
        return self._syncer.synced if self._syncer is not None else 0

    @property
    def wal_sync_pid(self) -> int | None:
        return self._syncer.pid() if self._syncer is not None else None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sqlite(self._path, self._synchronous)
        return self._conn

    def _drain(self) -> None:
        if self.on_handoff is not None:
            self.on_handoff(time.perf_counter() - self._handed_at)
        self._drain_queue()

    def _drain_queue(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                if not batch:
                    self._draining = False
                    return
            try:
                conn = self._connection()
            except sqlite3.Error as exc:
                for work in batch:
                    work.error = exc
            else:
                ended = self._checkpointer.ended
                idle = self._checkpointer.begun == ended
                if self._transact(conn, batch) and idle:
                    self._restart_cleared = max(self._restart_cleared, ended)
            for loop in {work.done.get_loop() for work in batch}:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(
                        _settle, [work for work in batch if work.done.get_loop() is loop]
                    )

    def _transact(self, conn: sqlite3.Connection, batch: list[_Work], begun: bool = False) -> bool:
        """One transaction for the batch; True if it committed. When the transaction itself
        is lost (a failed savepoint, SQLite rolling back on a full disk or an I/O error),
        every piece in it fails: none was committed, and the writer goes on with the next
        batch."""
        try:
            if not begun:
                conn.execute("BEGIN IMMEDIATE")
            if not self._run_pieces(conn, batch):
                return False
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            for work in batch:
                work.error = work.error or exc
            return False
        self.commits += 1
        self.pieces += len(batch)
        return True

    def _go_on(self) -> None:
        """With the drain claimed, on the loop's thread: the next batch here when it is
        brief, else the writer thread drains. The claim ends when the queue is empty."""
        batch = self._brief_batch()
        if batch is None:
            self._hand_to_thread()
        elif batch and not self._commit_here(batch):
            with self._lock:
                self._queue[:0] = batch
            self._hand_to_thread()

    def _hand_to_thread(self) -> None:
        self._handed_at = time.perf_counter()
        self._executor.submit(self._drain)

    def _brief_batch(self) -> list[_Work] | None:
        """The whole queue, if it may commit on this thread; [] (the claim ended) if the
        queue is empty; None if it goes to the writer thread."""
        loop = self._loop
        if self._loop_conn is None or self._loop_off or not self._past_restart():
            return None
        if self._syncer is not None and not self._syncer.alive:
            return None
        with self._lock:
            queue = self._queue
            if not queue:
                self._draining = False
                return []
            if len(queue) > MAX_BRIEF_BATCH or asyncio.get_running_loop() is not loop:
                return None
            if not all(work.brief and work.done.get_loop() is loop for work in queue):
                return None
            self._queue = []
        return queue

    def _past_restart(self) -> bool:
        """False from the start of a checkpoint until a commit on the writer thread has
        followed its end. A checkpoint that copies the whole WAL makes the next writer
        start the WAL over, and SQLite syncs the new WAL header then, under NORMAL too:
        that sync (a disk's stall, at worst) must not be the loop's."""
        return self._checkpointer.begun == self._restart_cleared

    def _commit_here(self, batch: list[_Work]) -> bool:
        """False, with nothing done, if the write lock is held elsewhere (waiting for it
        would hold the loop)."""
        conn = self._loop_conn
        assert conn is not None
        began = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return False
        committed = self._transact(conn, batch, begun=True)
        if self.on_loop_commit is not None:
            self.on_loop_commit(time.perf_counter() - began)
        self.loop_commits += committed
        if committed and self._syncer is not None:
            self._syncer.sync(lambda error: self._synced(batch, error))
            return True
        _settle(batch)
        self._go_on()
        return True

    def _synced(self, batch: list[_Work], error: OSError | None) -> None:
        """The helper's answer for a batch committed on the loop: its callers hear back
        now. If the helper is gone, the writer thread syncs the WAL instead."""
        if isinstance(error, WalSyncerGone):
            self._executor.submit(self._sync_then_drain, batch)
            return
        if error is not None:
            self._loop_off = True
            log.error("%s: its commits are refused, and every commit goes to the thread", error)
            for work in batch:
                work.error = work.error or sqlite3.OperationalError(str(error))
        _settle(batch)
        self._go_on()

    def _sync_then_drain(self, batch: list[_Work]) -> None:
        try:
            wal = os.open(self._wal_path, os.O_RDONLY)
            try:
                _fdatasync(wal)
            finally:
                os.close(wal)
        except OSError as exc:
            unsynced = sqlite3.OperationalError(f"the WAL was not synced: {exc}")
            for work in batch:
                work.error = work.error or unsynced
        finally:
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(_settle, batch)
            self._drain_queue()

    @staticmethod
    def _run_pieces(conn: sqlite3.Connection, batch: list[_Work]) -> bool:
        """Each piece's changes stand or fall alone; False when nothing is left to commit.
        Raises ``sqlite3.Error`` when the transaction is gone. A batch runs under one
        savepoint: SQLite copies each page a savepoint changes once, so a savepoint a
        piece copied the batch's hot pages (the audit's and the sessions' last ones) once
        a piece. Should a piece raise, the batch is undone and run again with a savepoint
        a piece, and only that piece is undone."""
        if len(batch) == 1:
            return _run_alone(conn, batch[0])
        conn.execute("SAVEPOINT batch")
        together = _run_together(conn, batch)
        if not together:
            conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        if not together:
            _run_each(conn, batch)
        return True

    async def transaction(
        self, work: Callable[[sqlite3.Connection], T], *, brief: bool = False
    ) -> T:
        """Run ``work`` in a transaction on the writer thread (or, when ``brief``, possibly
        on the event loop's: see ``commit_on_loop``); its changes are undone if it raises.
        Returns once they are committed."""
        return await self.queue(work, brief=brief).result()

    def queue(self, work: Callable[[sqlite3.Connection], T], *, brief: bool = False) -> Queued[T]:
        """Hand in ``work`` for the next transaction without starting one: it commits with
        whatever is handed in next (a request's next write, often), undone alone if it
        raises, or when its ``result`` is awaited. One commit and one wake-up fewer for a caller
        that can wait for the outcome later; in order with the work handed in after it.
        ``brief``: ``work`` is one request's few rows, quick enough to run on the loop.
        ``work`` may run twice in one transaction, its first run undone (another piece of
        its batch raised): it must change nothing but the database, or only what the
        second run sets right."""
        pending = _Work(work, asyncio.get_running_loop().create_future(), brief)
        with self._lock:
            self._queue.append(pending)
        return Queued(self, pending)

    def _start(self) -> None:
        """Start draining the queue unless it is under way (a drain takes what is queued
        until nothing is)."""
        with self._lock:
            start = not self._draining and bool(self._queue)
            self._draining = self._draining or start
        if start:
            self._go_on()

    @staticmethod
    async def _outcome(pending: _Work) -> Any:
        """A waiter that is cancelled (its client went away) does not cancel the piece:
        others may wait for it too, and it commits all the same."""
        try:
            return await asyncio.shield(pending.done)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the database cannot be written: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._syncer is not None:
            await self._syncer.close()

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        self._checkpointer.stop()
