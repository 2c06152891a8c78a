"""The audit trail's write path: one batch, one transaction, no ORM in between.

Measured on the gateway hot path, every SQLAlchemy async transaction on SQLite cost
several thread hand-offs (aiosqlite); appending a batch here costs one. SQLite batches
go to a writer thread (``SqliteWriter``); PostgreSQL batches go through a
dedicated asyncpg connection with ``executemany``.

"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from tether.errors import StoreUnavailable
from tether.store.schema import audit_events
from tether.store.sqlite_writer import SqliteWriter

__all__ = ["AuditAppender", "PostgresAppender", "SqliteAppender", "open_appender"]

COLUMNS = [column.name for column in audit_events.columns]
Row = tuple[Any, ...]


class AuditAppender(Protocol):
    async def append(self, rows: Sequence[Row]) -> None: ...

    async def close(self) -> None: ...


class SqliteAppender:
    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer
        placeholders = ", ".join("?" for _ in COLUMNS)
        self._insert = f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    async def append(self, rows: Sequence[Row]) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(self._insert, rows)

        try:
            await self._writer.transaction(insert)
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"the audit table cannot be written: {exc.message}") from exc

    async def close(self) -> None:
        await self._writer.close()


class PostgresAppender:
    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None
        placeholders = ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1))
        self._insert = f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    async def append(self, rows: Sequence[Row]) -> None:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=3, command_timeout=10)
            async with self._conn.transaction():
                await self._conn.executemany(self._insert, rows)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._discard()
            raise StoreUnavailable(f"the audit table cannot be written: {exc!r}") from exc

    async def _discard(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None


def open_appender(url: str, writer: SqliteWriter | None) -> AuditAppender:
    """SQLite appends share the process's ``SqliteWriter``; PostgreSQL has its own connection."""
    if make_url(url).get_backend_name() == "postgresql":
        return PostgresAppender(url)
    assert writer is not None, "SQLite needs the shared writer"
    return SqliteAppender(writer)
