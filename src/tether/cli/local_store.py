"""The database a local command (``migrate``, ``admin reset-token``) works on directly:
the one ``tether up`` would use with the same environment, no server involved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from tether.config import Settings
from tether.errors import ConfigError, TetherError
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.vault.master_key import load_master_key
from tether.vault.sealed_box import SealedBox

__all__ = ["local_database", "printable_url"]


def printable_url(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


@asynccontextmanager
async def local_database(settings: Settings) -> AsyncIterator[Database]:
    """The database brought to the newest schema; a failure to reach or migrate it is a
    ``ConfigError`` naming the database (password hidden)."""
    db = Database(settings.resolved_database_url, settings.sqlite_synchronous)
    try:
        try:
            box = SealedBox(load_master_key(settings.master_key, settings.data_dir / "master.key"))
            await upgrade(db, box)
        except TetherError as exc:
            raise ConfigError(
                f"cannot open the database at {printable_url(settings)}: {exc.message}"
            ) from exc
        except Exception as exc:
            raise ConfigError(
                f"cannot open the database at {printable_url(settings)}: {exc}"
            ) from exc
        yield db
    finally:
        await db.dispose()
