"""Audit append benchmark: what the hash chain costs per batch, in one run.

Appends batches of 1 and 32 events through ``SqliteAppender`` / ``PostgresAppender``
(chained: read the head under its lock, hash every event, move the head) against the same
rows inserted by the same connection with no chain work (baseline). On SQLite it then
verifies the whole chain (100,000 events and more) and prints events per second.

    uv run python bench/audit_bench.py [--quick] [--database-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from harness import report, timed
from sqlalchemy.engine import make_url

from tether.audit.appender import PostgresAppender, SqliteAppender
from tether.audit.event import AuditEvent
from tether.audit.normalise import normalised_row
from tether.audit.table import AuditStore
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.sqlite_writer import SqliteWriter

VERIFY_EVENTS = 100_000
BASE = (
    "INSERT INTO audit_events (id, ts, project_id, agent_id, agent_name, session_id, actor, "
    "source, action, resource, result, code, reason, attributes) VALUES ({})"
)


def rows(n: int) -> list[tuple[Any, ...]]:
    return [
        normalised_row(AuditEvent(
            "agent:bench", "anthropic", "model:messages", "anthropic:model/claude-sonnet-5",
            "allow", "no stage objected", project_id="p", agent_id="a", agent_name="bench",
            session_id="s", attributes={"model": "claude-sonnet-5", "stream": True},
        ))
        for _ in range(n)
    ]  # fmt: skip


def fresh(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The batch with new event ids (ids are the primary key)."""
    stamp = time.perf_counter_ns()
    return [(f"{stamp}-{i}", *row[1:]) for i, row in enumerate(batch)]


async def bench_sqlite(n: int, workdir: Path, synchronous: str = "FULL") -> None:
    url = f"sqlite+aiosqlite:///{workdir}/audit.db"
    db = Database(url)
    await upgrade(db)
    await db.dispose()
    writer = SqliteWriter(str(workdir / "audit.db"), synchronous)
    chained = SqliteAppender(writer)
    insert = BASE.format(", ".join("?" * 14))
    print(f"SQLite (one writer thread, synchronous={synchronous}), {n} batches each")
    for size in (1, 32):
        batch = rows(size)

        async def plain(batch: list[tuple[Any, ...]] = batch) -> None:
            rows_ = fresh(batch)
            await writer.transaction(lambda conn: conn.executemany(insert, rows_))

        async def linked(batch: list[tuple[Any, ...]] = batch) -> None:
            await chained.append(fresh(batch))

        base = await timed(n, lambda _: plain())
        with_chain = await timed(n, lambda _: linked())
        report(f"batch of {size}: no chain (baseline)", base)
        report(f"batch of {size}: hash-chained", with_chain, base)
    batch = rows(500)
    for _ in range(VERIFY_EVENTS // 500):
        await chained.append(fresh(batch))
    db = Database(url)
    started = time.perf_counter()
    verdict = await AuditStore(db).verify()
    seconds = time.perf_counter() - started
    await db.dispose()
    assert verdict.intact, verdict.first_break
    print(
        f"  verify the whole chain: {verdict.checked:,} events in {seconds:.2f} s "
        f"({verdict.checked / seconds:,.0f} events/s)"
    )
    await chained.close()


async def bench_postgres(n: int, url: str) -> None:
    db = Database(url)
    await upgrade(db)
    await db.dispose()
    chained = PostgresAppender(url)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    insert = BASE.format(", ".join(f"${i}" for i in range(1, 15)))
    print(f"PostgreSQL (one connection each), {n} batches each")
    for size in (1, 32):
        batch = rows(size)

        async def plain(batch: list[tuple[Any, ...]] = batch) -> None:
            async with conn.transaction():
                await conn.executemany(insert, fresh(batch))

        async def linked(batch: list[tuple[Any, ...]] = batch) -> None:
            await chained.append(fresh(batch))

        base = await timed(n, lambda _: plain())
        with_chain = await timed(n, lambda _: linked())
        report(f"batch of {size}: no chain (baseline)", base)
        report(f"batch of {size}: hash-chained", with_chain, base)
    await conn.close()
    await chained.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url", help="also measure on this (empty) PostgreSQL database")
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL", "both"],
        default="both",
        help="SQLite's synchronous mode (TETHER_SQLITE_SYNCHRONOUS); both compares them",
    )
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    modes = ["NORMAL", "FULL"] if args.synchronous == "both" else [args.synchronous]
    for mode in modes:
        with tempfile.TemporaryDirectory() as workdir:
            asyncio.run(bench_sqlite(n, Path(workdir), mode))
    if args.database_url:
        asyncio.run(bench_postgres(n, args.database_url))


if __name__ == "__main__":
    main()
