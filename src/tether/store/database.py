"""The async engine and the one place where database errors become tether errors.

Every store call goes through ``Database.read()`` / ``Database.write()``: a lost or
refused connection becomes ``StoreUnavailable`` (callers fail closed, 503) and a
uniqueness violation becomes ``Conflict`` (409). A deadlock or serialization
failure is transient: it becomes ``StoreUnavailable`` too, so batch writers keep their
batch and try again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tether.errors import Conflict, StoreUnavailable
from tether.store.driver_errors import CONNECTION_ERRORS
from tether.store.files import private_sqlite_file
from tether.store.sqlite_writer import SYNCHRONOUS_MODES

__all__ = ["Database"]

CONNECT_TIMEOUT_SECONDS = 3
TRANSIENT_SQLSTATES = {"40001": "serialization failure", "40P01": "deadlock"}
UNAVAILABLE_SQLSTATE_CLASSES = {
    "08": "its connection failed",
    "53": "it is out of resources (disk, memory or connections)",
    "57": "an operator intervened",
    "58": "it had a system error",
}
"""PostgreSQL errors that say the server cannot take writes now, not that the write is
wrong: 503 (fail closed, retry later) instead of a 500 (a new session on a full disk was
one)."""
COMMAND_TIMEOUT_SECONDS = 10


def _sqlite_setup(synchronous: str) -> Callable[[Any, Any], None]:
    """WAL for concurrent readers; checkpoints are left to ``SqliteCheckpointer``;
    ``synchronous`` as ``SqliteWriter`` has it (see ``SYNCHRONOUS_MODES``)."""
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")

    def setup(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return setup


async def _no_session_reset(conn: Any) -> None:
    """``reset`` for a hot-path asyncpg pool: a connection goes back as it is (asyncpg
    still rolls back a transaction left open). Its statements leave no session state, so
    the default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is a round trip
    and PostgreSQL CPU spent on nothing at every release, one per budget hold or new
    session."""


class Database:
    """Owns the engine; ``is_postgres`` lets the change feed pick LISTEN/NOTIFY."""

    def __init__(self, url: str, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        parsed = make_url(url)
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        self._driver_dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self._driver_pool: Any = None
        self._driver_pool_lock = asyncio.Lock()
        if self.is_postgres:
            self.engine: AsyncEngine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_timeout=CONNECT_TIMEOUT_SECONDS,
                connect_args={
                    "timeout": CONNECT_TIMEOUT_SECONDS,
                    "command_timeout": COMMAND_TIMEOUT_SECONDS,
                },
            )
        else:
            if parsed.database and parsed.database != ":memory:":
                private_sqlite_file(Path(parsed.database))
            self.engine = create_async_engine(url, connect_args={"timeout": 5})
            event.listen(self.engine.sync_engine, "connect", _sqlite_setup(sqlite_synchronous))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._translated(), self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction, committed when the block exits without error."""
        async with self._translated(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except IntegrityError as exc:
            raise Conflict(f"this would duplicate an existing record ({_first_line(exc)})") from exc
        except (OperationalError, InterfaceError, InternalError) as exc:
            raise StoreUnavailable(f"the database is unreachable: {_first_line(exc)}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable("the database connection was lost") from exc
            sqlstate = getattr(exc.orig, "sqlstate", None) or ""
            transient = TRANSIENT_SQLSTATES.get(sqlstate)
            if transient is not None:
                raise StoreUnavailable(
                    f"the database aborted this write ({transient}); try again"
                ) from exc
            unavailable = UNAVAILABLE_SQLSTATE_CLASSES.get(sqlstate[:2])
            if unavailable is not None:
                raise StoreUnavailable(
                    f"the database cannot be written: {unavailable} ({_first_line(exc)})"
                ) from exc
            raise
        except PoolTimeout as exc:
            raise StoreUnavailable("every database connection is busy; try again") from exc
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(
                f"the database is unreachable: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc

    async def driver_pool(self) -> Any:
        """PostgreSQL on its driver (an asyncpg pool, made on first use, closed with the
        engine), for hot-path statements the async ORM would wrap in a transaction of
        several round trips."""
        if self._driver_pool is not None:
            return self._driver_pool
        async with self._driver_pool_lock:
            if self._driver_pool is None:
                self._driver_pool = await asyncpg.create_pool(
                    self._driver_dsn,
                    min_size=1,
                    max_size=10,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    command_timeout=COMMAND_TIMEOUT_SECONDS,
                    reset=_no_session_reset,
                )
        return self._driver_pool

    async def dispose(self) -> None:
        if self._driver_pool is not None:
            pool, self._driver_pool = self._driver_pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except CONNECTION_ERRORS:
                pool.terminate()
        await self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0][:200] if text else type(orig).__name__
