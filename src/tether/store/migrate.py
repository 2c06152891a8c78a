"""Bring a database to the newest schema with Alembic, on the engine tether already has.

Alembic (about 11 MiB of a process) is imported only when a migration has to run: a
database already at head is recognised from the migration files and ``alembic_version``.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.store.database import Database
from tether.vault.sealed_box import SealedBox

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "head_revisions", "pending_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^revision\s*=\s*"([^"]+)"', re.M)
_PARENTS = re.compile(r"^down_revision\s*=\s*(.+)$", re.M)

MIGRATION_LOCK_KEY = 0x7E7E_0001
"""PostgreSQL advisory lock taken by whoever migrates; any constant shared by all versions."""
LOCK_POLL_SECONDS = 0.1


def alembic_config(connection: Any = None, box: SealedBox | None = None) -> Config:
    """``box`` lets migrations that seal stored secrets (0009) reach the master key."""
    from alembic.config import Config

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
        from alembic import command

        command.upgrade(alembic_config(sync_connection, box), "head")

    async with db.write() as conn:
        if db.is_postgres:
            await _wait_for_migration_lock(conn)
        if await _recorded_revisions(conn) != head_revisions():
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

    async with db.read() as conn:
        heads = await _recorded_revisions(conn)
    return None if heads == head_revisions() else ", ".join(sorted(heads)) or "none"


@cache
def head_revisions() -> frozenset[str]:
    """The newest revisions in the migration files: those no other revision names as its
    parent (``down_revision``), as Alembic's ``ScriptDirectory.get_heads`` finds them."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        revision = _REVISION.search(source)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        named = _PARENTS.search(source)
        parents.update(re.findall(r'"([^"]+)"', named.group(1)) if named else ())
    return frozenset(revisions - parents)


async def _recorded_revisions(conn: AsyncConnection) -> frozenset[str]:
    """The revisions ``alembic_version`` records; none for a database never migrated."""

    def has_version_table(sync_connection: Any) -> bool:
        return bool(inspect(sync_connection).has_table("alembic_version"))

    if not await conn.run_sync(has_version_table):
        return frozenset()
    rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
    return frozenset(str(row[0]) for row in rows)
