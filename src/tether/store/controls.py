"""Fleet-wide switches (``pause_all``), with who set them and why."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tether.store.changes import record_change
from tether.store.clock import now_ms
from tether.store.database import Database
from tether.store.schema import controls

__all__ = ["Control", "ControlStore"]


@dataclass(frozen=True, slots=True)
class Control:
    name: str
    value: str
    updated_by: str
    reason: str
    updated_at: int


class ControlStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> dict[str, Control]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(controls))
        return {
            r.name: Control(r.name, r.value, r.updated_by, r.reason, r.updated_at) for r in rows
        }

    async def set(self, name: str, value: str, by: str, reason: str) -> None:
        insert = pg_insert if self._db.is_postgres else sqlite_insert
        values = {"value": value, "updated_by": by, "reason": reason, "updated_at": now_ms()}
        statement = insert(controls).values(name=name, **values)
        statement = statement.on_conflict_do_update(index_elements=["name"], set_=values)
        async with self._db.write() as conn:
            await conn.execute(statement)
            await record_change(conn, "control", name)
