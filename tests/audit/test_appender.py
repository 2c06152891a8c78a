"""The appenders: on SQLite, batches of every size go in whole and on the chain, and what
the writer's connection keeps prepared for them stays a few MiB, whatever sizes came; on
PostgreSQL, a batch is one round trip, and a head another replica moved is linked after."""

from __future__ import annotations

from pathlib import Path

from tests.support.databases import PG_HOST, PG_PORT, seed_sqlite, sqlite_url
from tests.support.tcp_proxy import CuttableProxy
from tether.audit.appender import PostgresAppender, Row, SqliteAppender
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


async def test_on_postgresql_a_batch_is_one_round_trip_and_other_replicas_batches_link_after(
    postgres_url: str,
) -> None:
    """A decision stands once its batch is stored: four round trips a batch (begin, move the
    head, insert, commit) were four waits on the network before every decision."""
    url = postgres_url
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    through_proxy = url.replace(f":{PG_PORT}/", f":{proxy.port}/")
    appender, other_replica = PostgresAppender(through_proxy), PostgresAppender(url)
    database = Database(url)
    try:
        await appender.append([])
        await appender.append(rows(1, 0))
        await appender.append(rows(1, 1))
        before = proxy.reads_from_clients
        for n in range(20):
            await appender.append(rows(3, 2 + 3 * n))
        round_trips = proxy.reads_from_clients - before

        await other_replica.append(rows(2, 100))
        await appender.append(rows(4, 200))
        report = await AuditStore(database).verify()
    finally:
        await appender.close()
        await other_replica.close()
        await database.dispose()
        proxy.close()
    assert round_trips == 20
    assert report.first_break is None and report.checked == 2 + 60 + 2 + 4
