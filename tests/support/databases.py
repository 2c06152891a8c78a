"""Real databases for tests: a SQLite file, or a fresh PostgreSQL database per test run.

Most tests want a database at the newest schema, not to watch the migrations run again
(0.1 s on SQLite, 0.25 s on PostgreSQL, for each of several hundred servers): each test
process migrates one template per backend with tether's own migrations and copies it
(``seed_sqlite``, ``postgres_database(migrated=True)``). Tests of migrations ask for an
empty database."""

from __future__ import annotations

import asyncio
import atexit
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

PG_HOST = os.environ.get("TETHER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TETHER_TEST_PG_PORT", "5432"))
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The Redis the fleet tests share; each test keeps to a key prefix of its own."""


async def _create(name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await conn.close()


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _run_apart(coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """On a thread of its own: the caller may be inside a running event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


async def _migrate(url: str) -> None:
    from tether.store.database import Database
    from tether.store.migrate import upgrade

    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


_templates: dict[str, str] = {}
_template_lock = threading.Lock()


def _postgres_template() -> str:
    with _template_lock:
        if "postgres" not in _templates:
            name = f"tether_template_{uuid.uuid4().hex[:12]}"
            asyncio.run(_create(name))
            atexit.register(lambda: asyncio.run(_drop(name)))
            _run_apart(
                lambda: _migrate(f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}")
            )
            _templates["postgres"] = name
        return _templates["postgres"]


@contextmanager
def postgres_database(port: int = PG_PORT, migrated: bool = False) -> Iterator[str]:
    """A new PostgreSQL database, empty or (``migrated``) at the newest schema; yields
    its SQLAlchemy URL and drops it afterwards."""
    name = f"tether_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create(name, _postgres_template() if migrated else None))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{port}/{name}"
    finally:
        asyncio.run(_drop(name))


_sqlite_image: list[bytes] = []


def _sqlite_template() -> bytes:
    with _template_lock:
        if not _sqlite_image:
            directory = tempfile.mkdtemp(prefix="tether-template-")
            _run_apart(lambda: _migrate(sqlite_url(directory)))
            conn = sqlite3.connect(f"{directory}/tether.db")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            _sqlite_image.append(Path(f"{directory}/tether.db").read_bytes())
        return _sqlite_image[0]


def seed_sqlite(database_url: str) -> None:
    """Put a migrated database where ``database_url`` points, if nothing is there yet
    (created 0600, as tether creates its own)."""
    path = Path(database_url.split(":///", 1)[1])
    if path.exists() or not path.parent.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(_sqlite_template())


def sqlite_url(directory: str) -> str:
    return f"sqlite+aiosqlite:///{directory}/tether.db"


def run_sql(database_url: str, statement: str) -> None:
    """Run raw SQL on the database behind a tether, as someone with database access would
    (to show that tampering is detected)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split(":///", 1)[1])
        try:
            conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return

    async def run() -> None:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def fetch_sql(database_url: str, statement: str) -> list[dict]:
    """Rows of a raw SQL query, as dicts by column name."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split(":///", 1)[1])
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(statement)]
        finally:
            conn.close()

    async def run() -> list[dict]:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return [dict(row) for row in await conn.fetch(statement)]
        finally:
            await conn.close()

    return asyncio.run(run())
