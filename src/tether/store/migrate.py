"""Bring a database to the newest schema with Alembic, on the engine tether already has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from tether.store.database import Database

__all__ = ["alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database) -> None:
    """Idempotent: a database already at head is left as it is."""

    def run(sync_connection: Any) -> None:
        command.upgrade(alembic_config(sync_connection), "head")

    async with db.write() as conn:
        await conn.run_sync(run)
