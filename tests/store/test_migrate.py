"""The head read from the migration files is Alembic's own, so a database at head is
recognised without loading Alembic, and one behind it is still migrated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from tether.store.database import Database
from tether.store.migrate import alembic_config, head_revisions, pending_revision, upgrade


def test_the_head_read_from_the_files_is_alembics() -> None:
    alembic_heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert head_revisions() == alembic_heads
    assert len(alembic_heads) == 1


async def _behind_then_upgraded(url: str) -> tuple[str | None, str | None, str | None]:
    db = Database(url)
    try:
        empty = await pending_revision(db)
        await upgrade(db)
        at_head = await pending_revision(db)
        async with db.write() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0031'"))
        behind = await pending_revision(db)
        return empty, at_head, behind
    finally:
        await db.dispose()


def test_an_empty_database_is_behind_and_an_upgraded_one_at_head(tmp_path: Path) -> None:
    empty, at_head, behind = asyncio.run(
        _behind_then_upgraded(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    )
    assert empty == "none"
    assert at_head is None
    assert behind == "0031"
