"""The WAL sync helper process: it answers each sync asked of it, says when one failed,
outlives the signals sent to tether's process group and ends with tether's pipe."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

from tether.store.sqlite_writer import open_sqlite
from tether.store.wal_sync import WalSyncer, WalSyncerGone


async def _sync(syncer: WalSyncer) -> OSError | None:
    answered: asyncio.Future[OSError | None] = asyncio.get_running_loop().create_future()
    syncer.sync(answered.set_result)
    return await asyncio.wait_for(answered, 10)


def _wal(tmp_path: Path) -> tuple[sqlite3.Connection, str]:
    path = str(tmp_path / "s.db")
    conn = open_sqlite(path)
    conn.execute("CREATE TABLE t (n INTEGER)")
    return conn, f"{path}-wal"


async def test_each_sync_is_answered_and_a_failed_one_says_so(tmp_path: Path) -> None:
    conn, wal = _wal(tmp_path)
    syncer = WalSyncer(wal)
    try:
        await syncer.start()
        answers = await asyncio.gather(*(_sync(syncer) for _ in range(50)))
        assert answers == [None] * 50
        assert syncer.synced == 50
        conn.close()  # the last connection deletes the WAL
        assert not Path(wal).exists()
        failed = await _sync(syncer)
        assert isinstance(failed, OSError) and not isinstance(failed, WalSyncerGone), failed
        assert syncer.alive, "a failed sync does not end the helper"
        again = open_sqlite(str(tmp_path / "s.db"))
        again.execute("INSERT INTO t VALUES (1)")
        assert await _sync(syncer) is None, "the new WAL file is opened"
        again.close()
    finally:
        await syncer.close()


async def test_the_helper_outlives_the_process_groups_signals_and_ends_with_its_pipe(
    tmp_path: Path,
) -> None:
    conn, wal = _wal(tmp_path)
    syncer = WalSyncer(wal)
    try:
        await syncer.start()
        pid = syncer.pid()
        assert pid is not None
        for sent in (signal.SIGINT, signal.SIGTERM):
            os.kill(pid, sent)
        await asyncio.sleep(0.2)
        assert syncer.alive and await _sync(syncer) is None
        await syncer.close()
        assert not syncer.alive
        gone = await _sync(syncer)
        assert isinstance(gone, WalSyncerGone)
    finally:
        await syncer.close()
        conn.close()


async def test_a_helper_answering_in_time_is_kept_and_a_stuck_one_is_killed(
    tmp_path: Path,
) -> None:
    """Syncs answered within the stall limit leave the helper alone however many there
    are; a stopped helper is killed once its oldest sync is that old, and every sync
    waiting on it hears that the helper is gone."""
    conn, wal = _wal(tmp_path)
    syncer = WalSyncer(wal, stall_seconds=2.0)
    try:
        await syncer.start()
        for _ in range(8):
            assert await _sync(syncer) is None
            await asyncio.sleep(0.3)
        assert syncer.alive, "syncs spread over longer than the limit, each answered in time"
        pid = syncer.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(_sync(syncer), _sync(syncer))
        assert all(isinstance(answer, WalSyncerGone) for answer in answers), answers
        assert asyncio.get_running_loop().time() - started >= 2.0
        assert not syncer.alive
    finally:
        await syncer.close()
        conn.close()
