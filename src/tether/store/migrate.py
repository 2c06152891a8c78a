"""Bring a database to the newest schema with Alembic, on the engine tether already has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from tether.store.database import Database
from tether.vault.sealed_box import SealedBox

__all__ = ["alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Any = None, box: SealedBox | None = None) -> Config:
    """``box`` lets migrations that seal stored secrets (0009) reach the master key."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["sealed_box"] = box
    return config


async def upgrade(db: Database, box: SealedBox | None = None) -> None:
    """Idempotent: a database already at head is left as it is."""

    def run(sync_connection: Any) -> None:
        command.upgrade(alembic_config(sync_connection, box), "head")

    async with db.write() as conn:
        await conn.run_sync(run)
