"""Real databases for tests: a SQLite file, or a fresh PostgreSQL database per test run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

PG_HOST = os.environ.get("TETHER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TETHER_TEST_PG_PORT", "5432"))
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The Redis the fleet tests share; each test keeps to a key prefix of its own."""


async def _create(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def postgres_database(port: int = PG_PORT) -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"tether_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create(name))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{port}/{name}"
    finally:
        asyncio.run(_drop(name))


def sqlite_url(directory: str) -> str:
    return f"sqlite+aiosqlite:///{directory}/tether.db"


def run_sql(database_url: str, statement: str) -> None:
    """Run raw SQL on the database behind a tether, as someone with database access would
    (to show that tampering is detected)."""
    if database_url.startswith("sqlite"):
        import sqlite3

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
        import sqlite3

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
