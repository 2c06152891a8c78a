"""The audit trail's write path: one batch, one transaction, no ORM in between.

Each batch is linked onto the hash chain (``tether.audit.chain``) under the chain head's
lock (SQLite's single writer; ``SELECT … FOR UPDATE`` on PostgreSQL), so replicas append
one after another and every event has exactly one place in the chain.

Measured on the gateway hot path, every SQLAlchemy async transaction on SQLite cost
several thread hand-offs (aiosqlite); appending a batch here costs one. SQLite batches
go to a writer thread (``SqliteWriter``); PostgreSQL batches go through a
dedicated asyncpg connection with ``executemany``.

"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from tether.audit.chain import ChainHead, link
from tether.errors import AuditEventRejected, StoreUnavailable
from tether.store.driver_errors import CONNECTION_ERRORS
from tether.store.schema import audit_events
from tether.store.sqlite_writer import SqliteWriter

__all__ = [
    "AuditAppender",
    "PostgresAppender",
    "SqliteAppender",
    "append_linked",
    "open_appender",
]

COLUMNS = [column.name for column in audit_events.columns]
HEAD = "SELECT seq, hash FROM audit_chain WHERE id = 1"
MOVE_HEAD = "UPDATE audit_chain SET seq = {0}, hash = {1} WHERE id = 1"
MOVE_HEAD_FROM_SQLITE = (
    "UPDATE audit_chain SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ?"
)


def _unnest(first: int) -> str:
    """Every column of a batch as one array parameter, numbered from ``first``."""
    arrays = ", ".join(
        f"${n}::{'bigint' if name in ('ts', 'seq') else 'text'}[]"
        for n, name in enumerate(COLUMNS, start=first)
    )
    return f"INSERT INTO audit_events ({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays})"


MOVE_AND_INSERT = (
    "WITH moved AS (UPDATE audit_chain SET seq = $1, hash = $2"
    " WHERE id = 1 AND seq = $3 AND hash = $4 RETURNING 1), "
    f"stored AS ({_unnest(5)} WHERE EXISTS (SELECT 1 FROM moved)) "
    "SELECT EXISTS (SELECT 1 FROM moved)"
)
"""PostgreSQL: move the head from where this replica left it and store the batch, in one
statement (atomic alone, one round trip); nothing is stored unless the head moved. Each
column goes as one array, so every batch size shares one prepared statement."""
INSERT_UNDER_LOCK = _unnest(1)
Row = tuple[Any, ...]
UNSTORABLE = (TypeError, ValueError, OverflowError, UnicodeError)
"""What a row the database or the hasher cannot take raises (values, not connections)."""


MAX_ROWS_PER_INSERT = 256 if sqlite3.sqlite_version_info >= (3, 32) else 32
"""Rows in one ``INSERT``: 17 values each, well under the 32,766 variables a statement may
bind since SQLite 3.32 (999 before it, as some distributions' Python still links)."""
ROWS_STEP = 32
"""Statements carry a multiple of this many rows, or fewer than it: 39 sizes in all. The
``sqlite3`` module keeps each connection's last 128 prepared statements, and an ``INSERT``
of N rows holds about 1.5 KiB a row prepared; with every size from 1 to 256 seen, the
writer's cached inserts held 52 MiB, which a long run fills a rare size at a time. These
39 hold 3.5 MiB at most (measured), and a batch under 32 rows is still one statement."""
BRIEF_ROWS = 64
"""A batch of at most this many rows may commit on the event loop's thread
(``SqliteWriter.commit_on_loop``): about a millisecond; a backlog goes to the writer thread."""


def append_linked(
    conn: sqlite3.Connection, rows: Sequence[Row], last: ChainHead | None = None
) -> ChainHead:
    """Link ``rows`` onto the chain and insert them, inside the caller's transaction on the
    writer thread: a state change can commit its own audit event with it. ``last``: where
    the caller last left the head; the head is moved from there in one statement, and read
    only when someone else moved it since (another worker, a state change's events).
    Returns the new head."""
    if last is not None:
        linked, head = link(rows, last)
        moved = conn.execute(MOVE_HEAD_FROM_SQLITE, (head.seq, head.hash, last.seq, last.hash))
        if moved.rowcount == 1:
            _insert(conn, linked)
            return head
    seq, digest = conn.execute(HEAD).fetchone()
    linked, head = link(rows, ChainHead(seq, digest))
    _insert(conn, linked)
    conn.execute(MOVE_HEAD.format("?", "?"), (head.seq, head.hash))
    return head


def _insert(conn: sqlite3.Connection, linked: list[Row]) -> None:
    """A batch in one multi-row statement (two past ``ROWS_STEP`` rows, a few past
    ``MAX_ROWS_PER_INSERT``), not one statement a row (``executemany``). The writer thread
    gives up the GIL during each statement; taking it back while the event loop runs Python
    costs a wait of up to the interpreter's switch interval, and two context switches, once
    a statement: with a busy loop, 33 rows took 160 ms one by one and 16 ms in one statement
    (measured)."""
    start = 0
    for size in _statement_sizes(len(linked)):
        chunk = linked[start : start + size]
        conn.execute(_insert_rows(size), [value for row in chunk for value in row])
        start += size


def _statement_sizes(count: int) -> list[int]:
    """Rows in each ``INSERT`` of a batch of ``count``: as many full statements of
    ``MAX_ROWS_PER_INSERT`` rows as fit, then the largest multiple of ``ROWS_STEP`` left,
    then the rest."""
    whole, rest = divmod(count, MAX_ROWS_PER_INSERT)
    stepped = rest - rest % ROWS_STEP
    return [MAX_ROWS_PER_INSERT] * whole + [size for size in (stepped, rest - stepped) if size]


@functools.lru_cache(maxsize=MAX_ROWS_PER_INSERT)
def _insert_rows(count: int) -> str:
    row = f"({', '.join('?' for _ in COLUMNS)})"
    return f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES {', '.join([row] * count)}"


def _column_arrays(linked: Sequence[Row]) -> list[list[Any]]:
    return [list(column) for column in zip(*linked, strict=True)]


def _rejected(exc: BaseException) -> AuditEventRejected:
    return AuditEventRejected(f"the audit trail refused this event: {type(exc).__name__}")


class AuditAppender(Protocol):
    async def append(self, rows: Sequence[Row]) -> None: ...

    async def close(self) -> None: ...


class SqliteAppender:
    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer
        self._last: ChainHead | None = None
        """Where this appender left the head (set on the writer thread; a head moved by a
        transaction that then rolled back fails the next move's check and is read again)."""

    def _append(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
        self._last = append_linked(conn, rows, self._last)

    async def append(self, rows: Sequence[Row]) -> None:
        """``rows`` in ``BASE_COLUMNS`` order; the chain columns are added here."""
        try:
            await self._writer.transaction(
                lambda conn: self._append(conn, rows), brief=len(rows) <= BRIEF_ROWS
            )
        except UNSTORABLE as exc:
            raise _rejected(exc) from exc
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError | sqlite3.DataError):
                raise _rejected(exc.__cause__) from exc
            raise StoreUnavailable(f"the audit table cannot be written: {exc.message}") from exc

    async def close(self) -> None:
        await self._writer.close()


class PostgresAppender:
    """Appends in one round trip when this replica knows the head (``MOVE_AND_INSERT``):
    a transaction of four (begin, move, insert, commit) was four waits on the network and
    four wake-ups of the event loop before every decision could stand."""

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None
        self._head: ChainHead | None = None

    async def append(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=3, command_timeout=10)
            head = await self._move_and_insert(rows) if self._head is not None else None
            if head is None:
                async with self._conn.transaction():
                    head = await self._insert_under_lock(rows)
            self._head = head
        except (*UNSTORABLE, asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            self._head = None
            raise _rejected(exc) from exc
        except CONNECTION_ERRORS as exc:
            self._head = None
            await self._discard()
            raise StoreUnavailable(f"the audit table cannot be written: {exc!r}") from exc

    async def _move_and_insert(self, rows: Sequence[Row]) -> ChainHead | None:
        """Link ``rows`` after where this replica last left the head and store them in one
        statement; None (nothing written) when someone else moved the head since."""
        assert self._head is not None
        linked, head = link(rows, self._head)
        moved = await self._conn.fetchval(
            MOVE_AND_INSERT, head.seq, head.hash, self._head.seq, self._head.hash,
            *_column_arrays(linked),
        )  # fmt: skip
        return head if moved else None

    async def _insert_under_lock(self, rows: Sequence[Row]) -> ChainHead:
        """Read the head under its lock, link after it, move it and insert."""
        seq, digest = await self._conn.fetchrow(HEAD + " FOR UPDATE")
        linked, head = link(rows, ChainHead(seq, digest))
        await self._conn.execute(MOVE_HEAD.format("$1", "$2"), head.seq, head.hash)
        await self._conn.execute(INSERT_UNDER_LOCK, *_column_arrays(linked))
        return head

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
