"""The SQLite appender: batches of every size go in whole and on the chain, and what the
writer's connection keeps prepared for them stays a few MiB, whatever sizes came."""

from __future__ import annotations

from pathlib import Path

from tests.support.databases import seed_sqlite, sqlite_url
from tether.audit.appender import Row, SqliteAppender
from tether.audit.table import AuditStore
from tether.store.database import Database
from tether.store.sqlite_memory import sqlite_memory_used
from tether.store.sqlite_writer import SqliteWriter

LARGEST_BATCH = 300
PREPARED_BOUND = 8 * 2**20
"""Every batch size from 1 to 300 grew SQLite 39.6 MiB here before the sizes were bounded,
3.8 MiB after (measured): the bounded inserts hold 3.5 MiB at most, the page cache 2 MiB."""


def rows(count: int, first: int) -> list[Row]:
    return [
        (f"{n:032x}", 1_700_000_000_000 + n, "p" * 32, "a" * 32, "agent", "s", "agent:a",
         "anthropic", "model:messages", "anthropic:model/m", "allow", None, "ok", f'{{"n": {n}}}')
        for n in range(first, first + count)
    ]  # fmt: skip


async def test_batches_of_every_size_are_stored_on_the_chain_with_few_statements_prepared(
    tmp_path: Path,
) -> None:
    url = sqlite_url(str(tmp_path))
    seed_sqlite(url)
    writer = SqliteWriter(url.split(":///", 1)[1])
    appender = SqliteAppender(writer)
    database = Database(url)
    try:
        await appender.append(rows(1, 0))
        before = sqlite_memory_used()
        assert before is not None, "this interpreter's SQLite reports its memory"
        stored = 1
        for size in range(1, LARGEST_BATCH + 1):
            await appender.append(rows(size, stored))
            stored += size
        grown = sqlite_memory_used() - before  # type: ignore[operator]

        report = await AuditStore(database).verify()
        assert report.first_break is None and report.checked == stored
        assert grown < PREPARED_BOUND, f"SQLite grew {grown / 2**20:.1f} MiB"
    finally:
        await appender.close()
        await database.dispose()
