"""The SQLite hot-path writer: pieces committed together undo only themselves when they
fail, and the WAL stays bounded while readers keep overlapping the checkpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tether.errors import StoreUnavailable
from tether.store.sqlite_writer import (
    CHECKPOINT_SECONDS,
    MAX_BRIEF_BATCH,
    SqliteCheckpointer,
    SqliteWriter,
    open_sqlite,
)
from tether.store.wal_sync import STALL_SECONDS


def _writer_on_a_table(
    tmp_path: Path,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    wal_sync_stall_seconds: float = STALL_SECONDS,
) -> tuple[str, SqliteWriter]:
    """A writer on a new database holding one table ``t (n INTEGER PRIMARY KEY)``."""
    path = str(tmp_path / "w.db")
    setup = open_sqlite(path)
    setup.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    setup.close()
    return path, SqliteWriter(
        path, checkpoint_seconds=checkpoint_seconds, wal_sync_stall_seconds=wal_sync_stall_seconds
    )


NO_CHECKPOINT = 3600.0
"""For a test that needs every brief batch on the loop: the first commit after each
checkpoint is the writer thread's (``test_the_first_commit_after_a_checkpoint_is_the_threads``),
and on a busy machine a checkpoint can last as long as the test."""


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (n,)).rowcount


async def test_a_failing_piece_is_undone_alone_and_its_neighbours_commit(tmp_path: Path) -> None:
    _, writer = _writer_on_a_table(tmp_path)

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (100)")
        conn.execute("INSERT INTO t VALUES (1)")

    try:
        results = await asyncio.gather(
            *(writer.transaction(insert(n)) for n in range(1, 50)),
            writer.transaction(insert_then_fail),
            return_exceptions=True,
        )
        assert results[:49] == [1] * 49
        assert isinstance(results[49], StoreUnavailable)
        rows = await writer.transaction(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert sorted(n for (n,) in rows) == list(range(1, 50)), "100 was undone with its piece"
    finally:
        await writer.close()


async def test_a_piece_failing_mid_batch_is_undone_alone_and_the_others_commit_once(
    tmp_path: Path,
) -> None:
    """One batch, its middle piece raising after a change: the batch is run again with a
    savepoint a piece (the pieces before it run twice, their first run undone), and each
    other piece's change commits once, with its own result."""
    _, writer = _writer_on_a_table(tmp_path)
    runs: list[int] = []

    def counted(n: int) -> Callable[[sqlite3.Connection], int]:
        def run(conn: sqlite3.Connection) -> int:
            runs.append(n)
            return int(conn.execute("INSERT INTO t VALUES (?)", (n,)).rowcount) * n

        return run

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (100)")
        raise ValueError("this piece fails")

    try:
        queued = [writer.queue(counted(n)) for n in (1, 2)]
        failing = writer.queue(insert_then_fail)
        queued += [writer.queue(counted(n)) for n in (3, 4)]
        assert [await q.result() for q in queued] == [1, 2, 3, 4]
        with pytest.raises(ValueError, match="this piece fails"):
            await failing.result()
        rows = await writer.transaction(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert sorted(n for (n,) in rows) == [1, 2, 3, 4], "100 was undone with its piece"
        assert runs == [1, 2, 1, 2, 3, 4], "one batch: run together, then each alone"
        assert writer.commits == 2
    finally:
        await writer.close()


async def test_only_a_wake_up_of_the_idle_thread_counts_as_a_handoff(tmp_path: Path) -> None:
    """A transaction handed in after the thread went idle wakes it; work handed in while
    it is busy is taken by the running drain, with no wake-up of its own."""
    _, writer = _writer_on_a_table(tmp_path)
    handoffs: list[float] = []
    writer.on_handoff = handoffs.append
    try:
        for n in range(1, 6):
            assert await writer.transaction(insert(n)) == 1
            await asyncio.sleep(0.05)  # the drain finds the queue empty and ends
        assert 4 <= len(handoffs) <= 5, handoffs
        assert sum(handoffs) > 0
        woken = len(handoffs)
        results = await asyncio.gather(*(writer.transaction(insert(n)) for n in range(6, 56)))
        assert results == [1] * 50
        assert 1 <= len(handoffs) - woken < 50
        assert writer.pieces == 55
    finally:
        await writer.close()


async def test_a_transaction_sqlite_rolled_back_fails_its_batch_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """SQLite may roll a whole transaction back under a piece (a full disk, an I/O error):
    then no piece of the batch was committed, each is told so, and later work still runs
    (the writer's thread used to die on the savepoint that was gone, and every later write
    waited forever)."""
    _, writer = _writer_on_a_table(tmp_path)

    def lose_the_transaction(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    try:
        batch = [writer.queue(insert(n)) for n in (1, 2)]
        batch.append(writer.queue(lose_the_transaction))
        batch.append(writer.queue(insert(3)))
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(piece.result() for piece in batch), return_exceptions=True), 10
        )
        assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes
        assert await asyncio.wait_for(writer.transaction(insert(4)), 10) == 1
        rows = await writer.transaction(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert rows == [(4,)], "nothing of the lost batch may be kept"
    finally:
        await writer.close()


async def test_a_waiter_that_goes_away_does_not_cancel_the_work_others_wait_for(
    tmp_path: Path,
) -> None:
    """A new session's row is awaited by each call that uses it: one client hanging up
    must not make the others' wait fail, nor the row go unwritten."""
    _, writer = _writer_on_a_table(tmp_path)
    try:
        row = writer.queue(lambda conn: conn.execute("INSERT INTO t VALUES (7)").rowcount)
        leaving = asyncio.ensure_future(row.result())
        await asyncio.sleep(0)
        leaving.cancel()
        assert await asyncio.wait_for(row.result(), 10) == 1
        rows = await writer.transaction(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert rows == [(7,)]
    finally:
        await writer.close()


async def test_queued_work_commits_with_the_next_transaction_or_when_awaited(
    tmp_path: Path,
) -> None:
    path, writer = _writer_on_a_table(tmp_path)
    reader = sqlite3.connect(path)

    def stored() -> list[int]:
        return [n for (n,) in reader.execute("SELECT n FROM t ORDER BY n")]

    try:
        queued = writer.queue(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        await asyncio.sleep(0.2)
        assert stored() == [] and not queued.done(), "queued work started a transaction alone"

        def after(conn: sqlite3.Connection) -> list[int]:
            return [n for (n,) in conn.execute("SELECT n FROM t")]

        assert await writer.transaction(after) == [1], "not in order, or not in that commit"
        assert queued.done()
        await queued.result()
        alone = writer.queue(lambda conn: conn.execute("INSERT INTO t VALUES (2)"))
        await alone.result()
        assert stored() == [1, 2]

        failing = writer.queue(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        neighbour = writer.transaction(lambda conn: conn.execute("INSERT INTO t VALUES (3)"))
        await neighbour
        with pytest.raises(StoreUnavailable):
            await failing.result()
        assert stored() == [1, 2, 3]
    finally:
        reader.close()
        await writer.close()


def test_the_wal_is_truncated_although_readers_overlap_every_checkpoint(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    limit = 512 * 1024
    writer_conn = open_sqlite(path)
    writer_conn.execute("CREATE TABLE t (blob BLOB)")
    stop = threading.Event()

    def overlapping_reader() -> None:
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        while not stop.is_set():
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()
            time.sleep(0.03)
            reader.execute("COMMIT")
        reader.close()

    reading = threading.Thread(target=overlapping_reader, daemon=True)
    reading.start()
    checkpointer = SqliteCheckpointer(path, interval=0.05, wal_limit=limit)
    checkpointer.start()
    try:
        largest = 0
        for _ in range(60):
            writer_conn.execute("BEGIN IMMEDIATE")
            writer_conn.execute("INSERT INTO t VALUES (?)", (os.urandom(64 * 1024),))
            writer_conn.execute("COMMIT")
            largest = max(largest, os.path.getsize(f"{path}-wal"))
        assert largest > limit, "the test wrote more than the limit between checkpoints"
        deadline = time.monotonic() + 5
        while os.path.getsize(f"{path}-wal") > limit:
            if time.monotonic() > deadline:
                pytest.fail(f"WAL still {os.path.getsize(f'{path}-wal')} bytes")
            time.sleep(0.05)
    finally:
        stop.set()
        reading.join(5)
        checkpointer.stop()
        writer_conn.close()


def test_under_constant_commits_the_wal_is_written_again_in_place_not_grown(
    tmp_path: Path,
) -> None:
    """A WAL that grows makes every commit extend the file, an fsync that waits for the
    file system's journal; it is restarted in place once copied, readers or not."""
    path = str(tmp_path / "w.db")
    writer_conn = open_sqlite(path)
    writer_conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, blob BLOB)")
    stop = threading.Event()

    def short_reader() -> None:
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        while not stop.is_set():
            reader.execute("SELECT count(*) FROM t").fetchone()
            time.sleep(0.002)
        reader.close()

    reading = threading.Thread(target=short_reader, daemon=True)
    reading.start()
    restart_at = 256 * 1024
    checkpointer = SqliteCheckpointer(
        path, interval=0.02, wal_limit=1 << 40, restart_bytes=restart_at
    )
    checkpointer.start()
    try:
        enough = 32 * restart_at
        written, largest, deadline = 0, 0, time.monotonic() + 120
        while time.monotonic() < deadline and written < enough:
            writer_conn.execute("BEGIN IMMEDIATE")
            writer_conn.execute(
                "INSERT OR REPLACE INTO t VALUES (?, ?)", (written % 64, b"x" * 4000)
            )
            writer_conn.execute("COMMIT")
            written += 4096
            largest = max(largest, os.path.getsize(f"{path}-wal"))
            time.sleep(0.0005)
        assert written >= enough, f"only {written} bytes committed in 120 s"
        assert largest < 8 * restart_at, f"the WAL grew to {largest} bytes"
    finally:
        stop.set()
        reading.join(5)
        checkpointer.stop()
        writer_conn.close()


async def test_a_reader_left_open_does_not_hold_the_exit(tmp_path: Path) -> None:
    """The last checkpoint at close waits for readers only briefly: a read transaction
    still open elsewhere (a dashboard query, another process) held ``tether up``'s exit for
    the whole 5 s busy timeout. What it leaves in the WAL is committed all the same."""
    path, writer = _writer_on_a_table(tmp_path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        await asyncio.gather(*(writer.transaction(insert(n)) for n in range(1, 20)))
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (19,)
        began = time.monotonic()
        await writer.close()
        assert time.monotonic() - began < 2.5, "close waited for the reader"
    finally:
        reader.close()
    again = sqlite3.connect(path)
    try:
        assert again.execute("SELECT count(*) FROM t").fetchone() == (19,)
    finally:
        again.close()


def _where(n: int, threads: list[str]) -> Callable[[sqlite3.Connection], int]:
    """``insert(n)``, noting the thread it ran on."""

    def run(conn: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        return int(conn.execute("INSERT INTO t VALUES (?)", (n,)).rowcount)

    return run


async def test_brief_work_commits_on_the_loops_thread_and_is_answered_only_once_synced(
    tmp_path: Path,
) -> None:
    """``commit_on_loop``: a decision's brief writes commit on the event loop's thread and
    their callers hear back only after the helper process has synced the WAL (counted
    before each answer: a commit answered first would find the syncs one behind)."""
    path, writer = _writer_on_a_table(tmp_path, NO_CHECKPOINT)
    threads: list[str] = []
    try:
        await writer.commit_on_loop()
        assert writer.wal_syncs == 0
        for n in range(1, 21):
            assert await writer.transaction(_where(n, threads), brief=True) == 1
            assert writer.wal_syncs >= writer.loop_commits == n
        assert set(threads) == {threading.current_thread().name}
        assert await writer.transaction(_where(21, threads)) == 1
        assert threads[-1].startswith("sqlite-writer"), "work not marked brief stays on the thread"
        assert writer.loop_commits == 20
    finally:
        await writer.close()
    stored = sqlite3.connect(path)
    try:
        assert stored.execute("SELECT count(*) FROM t").fetchone() == (21,)
    finally:
        stored.close()


async def test_the_first_commit_after_a_checkpoint_is_the_threads(tmp_path: Path) -> None:
    """A checkpoint that copied the whole WAL makes the next writer start it over, and
    SQLite syncs the new header then even under NORMAL: that commit goes to the writer
    thread, so the loop never waits for the disk; the one after it is the loop's again."""
    _, writer = _writer_on_a_table(tmp_path)
    threads: list[str] = []
    here = threading.current_thread().name
    try:
        await writer.commit_on_loop()
        assert await writer.transaction(_where(1, threads), brief=True) == 1
        await asyncio.sleep(0.6)  # the checkpointer runs every 0.5 s
        assert await writer.transaction(_where(2, threads), brief=True) == 1
        assert threads == [here, "sqlite-writer_0"], threads
        deadline = time.monotonic() + 10
        while threads[-1] != here:  # on the thread again while a checkpoint is under way
            assert time.monotonic() < deadline, f"never the loop's again: {threads}"
            assert await writer.transaction(_where(len(threads) + 1, threads), brief=True) == 1
            await asyncio.sleep(0.01)
    finally:
        await writer.close()


async def test_a_backlog_of_brief_work_goes_to_the_thread_in_order(tmp_path: Path) -> None:
    """More brief pieces than ``MAX_BRIEF_BATCH`` waiting at once (a backlog after a stall)
    commit on the writer thread: the loop is never held for a long batch."""
    _, writer = _writer_on_a_table(tmp_path)
    threads: list[str] = []
    try:
        await writer.commit_on_loop()
        queued = [writer.queue(_where(n, threads), brief=True) for n in range(MAX_BRIEF_BATCH + 1)]
        assert [await q.result() for q in queued] == [1] * (MAX_BRIEF_BATCH + 1)
        assert all(name.startswith("sqlite-writer") for name in threads), threads
        rows = await writer.transaction(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert [n for (n,) in rows] == list(range(MAX_BRIEF_BATCH + 1))
    finally:
        await writer.close()


async def test_brief_work_finding_the_write_lock_taken_goes_to_the_thread_and_the_loop_runs_on(
    tmp_path: Path,
) -> None:
    """Another connection holding the write lock (an admin write, another process): the
    loop does not wait for it (that would hold every call), the writer thread does."""
    path, writer = _writer_on_a_table(tmp_path, NO_CHECKPOINT)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    threads: list[str] = []
    try:
        await writer.commit_on_loop()
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        began = time.monotonic()
        assert await writer.transaction(_where(1, threads), brief=True) == 1
        waited = time.monotonic() - began
        ticker.cancel()
        assert waited >= 0.4, "it committed while the lock was held elsewhere"
        assert threads == ["sqlite-writer_0"]
        assert ticks >= 10, f"the loop ran {ticks} times in {waited:.2f} s"
        deadline = time.monotonic() + 10
        while threads[-1] != threading.current_thread().name:
            assert time.monotonic() < deadline, f"never the loop's again: {threads}"
            assert await writer.transaction(_where(len(threads) + 1, threads), brief=True) == 1
            await asyncio.sleep(0.01)
    finally:
        await writer.close()
        other.close()


@pytest.mark.parametrize("ended_by", ["a kill", "the stall limit"])
async def test_when_the_sync_helper_ends_waiting_work_is_synced_by_the_thread_and_none_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ended_by: str
) -> None:
    """The helper stopped mid-sync, then killed by someone, or left stopped until the
    writer kills it itself: the batch it left unanswered is synced on the writer thread
    and answered, and the writes after it (a kill switch's, say) are not held behind it."""
    path, writer = _writer_on_a_table(tmp_path, NO_CHECKPOINT, wal_sync_stall_seconds=2.0)
    threads: list[str] = []
    try:
        await writer.commit_on_loop()
        helper = writer.wal_sync_pid
        assert helper is not None
        os.kill(helper, signal.SIGSTOP)
        waiting = asyncio.ensure_future(writer.transaction(_where(1, threads), brief=True))
        await asyncio.sleep(0.2)
        assert not waiting.done(), "answered before the WAL was synced"
        if ended_by == "a kill":
            os.kill(helper, signal.SIGKILL)
        assert await asyncio.wait_for(waiting, 10) == 1
        assert threads == [threading.current_thread().name]
        assert await _ends_within(helper, 10), "the helper is gone"
        assert await writer.transaction(_where(2, threads), brief=True) == 1
        assert threads[-1].startswith("sqlite-writer")
        stall_logged = "has not answered a sync" in caplog.text
        assert stall_logged is (ended_by == "the stall limit")
    finally:
        await writer.close()
    stored = sqlite3.connect(path)
    try:
        assert stored.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
    finally:
        stored.close()


async def test_closing_the_writer_stops_its_sync_helper(tmp_path: Path) -> None:
    _, writer = _writer_on_a_table(tmp_path)
    await writer.commit_on_loop()
    helper = writer.wal_sync_pid
    assert helper is not None
    await writer.transaction(insert(1), brief=True)
    assert _running(helper)
    await writer.close()
    assert not _running(helper)


async def _ends_within(pid: int, seconds: float) -> bool:
    """A killed process is gone a moment after its kill, not at it."""
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return False
    return "\nState:\tZ" not in status


async def test_a_database_reached_through_a_symbolic_link_has_its_own_wal_synced(
    tmp_path: Path,
) -> None:
    """SQLite follows the link and keeps the WAL beside the real file: the helper syncs
    that one (syncing ``<link>-wal`` failed every commit, or synced a stale file)."""
    real = tmp_path / "real"
    real.mkdir()
    path, writer = _writer_on_a_table(real)
    await writer.close()
    (tmp_path / "link.db").symlink_to(path)
    writer = SqliteWriter(str(tmp_path / "link.db"), checkpoint_seconds=NO_CHECKPOINT)
    threads: list[str] = []
    try:
        await writer.commit_on_loop()
        assert await writer.transaction(_where(1, threads), brief=True) == 1
        assert writer.loop_commits == 1 and writer.wal_syncs == 1
    finally:
        await writer.close()
