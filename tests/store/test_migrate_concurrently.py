"""Replicas starting together on a fresh PostgreSQL database: migrations run one at a
time under an advisory lock, so every one of them succeeds."""

from __future__ import annotations

import asyncio

from tests.support.databases import postgres_database
from tether.store.database import Database
from tether.store.migrate import upgrade


async def _three_at_once(url: str) -> list[BaseException | None]:
    dbs = [Database(url) for _ in range(3)]
    try:
        return await asyncio.gather(*(upgrade(db) for db in dbs), return_exceptions=True)
    finally:
        for db in dbs:
            await db.dispose()


def test_three_concurrent_migrations_on_a_fresh_database_all_succeed() -> None:
    for _ in range(3):
        with postgres_database() as url:
            results = asyncio.run(_three_at_once(url))
            assert results == [None, None, None], results
