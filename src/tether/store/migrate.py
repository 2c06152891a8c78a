"""Bring a database to the newest schema with Alembic, on the engine tether already has."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.store.database import Database
from tether.vault.sealed_box import SealedBox

__all__ = ["alembic_config", "pending_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"

MIGRATION_LOCK_KEY = 0x7E7E_0001
"""PostgreSQL advisory lock taken by whoever migrates; any constant shared by all versions."""
LOCK_POLL_SECONDS = 0.1


def alembic_config(connection: Any = None, box: SealedBox | None = None) -> Config:
    """``box`` lets migrations that seal stored secrets (0009) reach the master key."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["sealed_box"] = box
    return config


async def upgrade(db: Database, box: SealedBox | None = None) -> None:
    """Idempotent: a database already at head is left as it is. On PostgreSQL, replicas
    starting together take turns (a transaction-scoped advisory lock): the first migrates,
    the others then find the schema at head. ``box`` (the master key) re-seals what an
    upgrade must encrypt."""

    def run(sync_connection: Any) -> None:
        command.upgrade(alembic_config(sync_connection, box), "head")

    async with db.write() as conn:
        if db.is_postgres:
            await _wait_for_migration_lock(conn)
        await conn.run_sync(run)


async def _wait_for_migration_lock(conn: AsyncConnection) -> None:
    """Polled rather than blocking: another replica's migration may outlast the driver's
    command timeout."""
    try_lock = text("SELECT pg_try_advisory_xact_lock(:key)")
    while not (await conn.execute(try_lock, {"key": MIGRATION_LOCK_KEY})).scalar():
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def pending_revision(db: Database) -> str | None:
    """None when the database is at the newest schema; otherwise the revision it is at
    (``"none"`` for an empty database), for a replica told not to migrate to refuse."""

    def current(sync_connection: Any) -> str | None:
        heads = set(MigrationContext.configure(sync_connection).get_current_heads())
        wanted = set(ScriptDirectory.from_config(alembic_config()).get_heads())
        return None if heads == wanted else ", ".join(sorted(heads)) or "none"

    async with db.read() as conn:
        return await conn.run_sync(current)
