"""What ``RETURNING`` costs SQLite's writer, on tether's own schema and statements: a new
session's row, its budget period's first lease and the charge that closes an idle lease,
each as tether runs it (nothing read back; ``rowcount`` says whether a row changed) beside
the same statement ending in ``RETURNING``, in alternated rounds. SQLite collects the rows
a ``RETURNING`` clause yields in a table of its own before the first is read, so the
clause costs about as much again as the statement.

    uv run python bench/sqlite_returning_bench.py [--rounds 7] [--rows 2400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether.clock import new_uuid7, now_ms
from tether.store import budget_ledger, sessions
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.sqlite_writer import open_sqlite

PER_TRANSACTION = 8
"""About what one writer commit carries of new sessions under load."""

PERIOD_COLUMNS = (
    "budget_id, period_key, spent_micros, reserved_micros, spent_tokens, reserved_tokens, "
    "period_end"
)
"""What ``RESERVE`` reads back, which the first lease of a fresh period read before."""

Arguments = Callable[[int], tuple[Any, ...]]


def _qmark(template: str) -> str:
    return budget_ledger._sql(template, "qmark")


def _session_args(_: int) -> tuple[Any, ...]:
    at = now_ms()
    return (new_uuid7(), "bench-agent", "bench-project", "active", at, at)


def _period_args(_: int) -> tuple[Any, ...]:
    return ("bench-budget", new_uuid7(), 20_000, 0, None)


def _charge_args(row: int) -> tuple[Any, ...]:
    return (20_000, 0, 100, 0, "bench-budget", f"period-{row % 4096}")


STATEMENTS: dict[str, tuple[str, str, Arguments]] = {
    "a new session's row": (
        sessions._CREATE_NEW,
        sessions._CREATE,
        _session_args,
    ),
    "a fresh period's first lease": (
        _qmark(budget_ledger.OPEN_PERIOD),
        _qmark(f"{budget_ledger.OPEN_PERIOD} RETURNING {PERIOD_COLUMNS}"),
        _period_args,
    ),
    "the charge that closes a lease": (
        _qmark(budget_ledger._unread(budget_ledger.CHARGE)),
        _qmark(budget_ledger.CHARGE),
        _charge_args,
    ),
}


def _database(path: Path) -> None:
    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    conn = open_sqlite(str(path), "NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO budget_periods VALUES ('bench-budget', ?, 0, 1000000000, 0, 0, NULL)",
        [(f"period-{n}",) for n in range(4096)],
    )
    conn.execute("COMMIT")
    conn.close()


def _time(conn: Any, sql: str, arguments: Arguments, rows: int, read: bool) -> float:
    """CPU microseconds a statement, ``rows`` of them in transactions of
    ``PER_TRANSACTION``; the commits themselves are left out."""
    spent = 0.0
    for first in range(0, rows, PER_TRANSACTION):
        conn.execute("BEGIN IMMEDIATE")
        started = time.process_time()
        for row in range(first, first + PER_TRANSACTION):
            cursor = conn.execute(sql, arguments(row))
            if read:
                cursor.fetchone()
            elif cursor.rowcount != 1:
                raise RuntimeError(f"no row changed: {sql}")
        spent += time.process_time() - started
        conn.execute("COMMIT")
    return spent / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=2400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "tether.db"
        _database(path)
        conn = open_sqlite(str(path), "NORMAL")
        print(
            f"SQLite, tether's schema, {args.rows:,} rows a round in transactions of "
            f"{PER_TRANSACTION}, {args.rounds} alternated rounds (CPU µs a statement):\n"
        )
        print("| statement | as tether runs it | with `RETURNING` | saved | lower in |")
        print("|---|---:|---:|---:|---:|")
        for name, (unread, returning, arguments) in STATEMENTS.items():
            plain: list[float] = []
            read: list[float] = []
            for _ in range(args.rounds):
                plain.append(_time(conn, unread, arguments, args.rows, False))
                read.append(_time(conn, returning, arguments, args.rows, True))
            lower = sum(p < r for p, r in zip(plain, read, strict=True))
            a, b = statistics.median(plain), statistics.median(read)
            print(f"| {name} | {a:.1f} | {b:.1f} | {b - a:.1f} | {lower} of {args.rounds} |")
        conn.close()


if __name__ == "__main__":
    main()
