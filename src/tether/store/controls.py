"""Fleet-wide switches (``pause_all``), with who set them and why."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tether.clock import now_ms
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import controls
from tether.store.sqlite_writer import SqliteWriter

__all__ = ["Control", "ControlStore"]


@dataclass(frozen=True, slots=True)
class Control:
    name: str
    value: str
    updated_by: str
    reason: str
    updated_at: int


_UPSERT = (
    "INSERT INTO controls (name, value, updated_by, reason, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, "
    "reason = excluded.reason, updated_at = excluded.updated_at"
)
_RECORD_CHANGE = "INSERT INTO change_log (kind, ref, created_at) VALUES ('control', ?, ?)"


class ControlStore:
    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def all(self) -> dict[str, Control]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(controls))
        return {
            r.name: Control(r.name, r.value, r.updated_by, r.reason, r.updated_at) for r in rows
        }

    async def set(self, name: str, value: str, by: str, reason: str) -> None:
        """On SQLite through the writer thread, as a kill (no busy-wait on a second writer)."""
        if self._writer is not None:
            row = (name, value, by, reason, now_ms())

            def write(conn: sqlite3.Connection) -> None:
                conn.execute(_UPSERT, row)
                conn.execute(_RECORD_CHANGE, (name, row[-1]))

            await self._writer.transaction(write)
            return
        insert = pg_insert if self._db.is_postgres else sqlite_insert
        values = {"value": value, "updated_by": by, "reason": reason, "updated_at": now_ms()}
        statement = insert(controls).values(name=name, **values)
        statement = statement.on_conflict_do_update(index_elements=["name"], set_=values)
        async with self._db.write() as conn:
            await conn.execute(statement)
            await record_change(conn, "control", name)
