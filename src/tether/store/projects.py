"""Projects: the unit that owns agents, upstream credentials and (later) budgets."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import insert, select, update

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound
from tether.records.fleet import Project
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import projects
from tether.store.sqlite_writer import SqliteWriter

__all__ = ["ProjectStore"]


def _project(row: Any) -> Project:
    return Project(
        id=row.id,
        name=row.name,
        paused=bool(row.paused),
        created_at=row.created_at,
        upstream_base_url=row.upstream_base_url,
        timezone=row.timezone,
        state_by=row.state_by,
        state_reason=row.state_reason,
        state_at=row.state_at,
        deletion_approval=bool(row.deletion_approval),
        unknown_command=row.unknown_command,
        approval_ttl_seconds=row.approval_ttl_seconds,
        guards=row.guards,
        drift=row.drift,
    )


_SET_PAUSED = (
    "UPDATE projects SET paused = ?, state_by = ?, state_reason = ?, state_at = ? WHERE id = ?"
)
_RECORD_CHANGE = "INSERT INTO change_log (kind, ref, created_at) VALUES ('project', ?, ?)"


class ProjectStore:
    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def create(self, name: str) -> Project:
        project = Project(id=new_id(), name=name, paused=False, created_at=now_ms())
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(projects).values(
                        id=project.id, name=name, paused=False, created_at=project.created_at
                    )
                )
                await record_change(conn, "project", project.id)
        except Conflict:
            raise Conflict(f"a project named {name!r} already exists; pick another name") from None
        return project

    async def get(self, project_id: str) -> Project | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(projects).where(projects.c.id == project_id))).first()
        return _project(row) if row else None

    async def by_name(self, name: str) -> Project:
        async with self._db.read() as conn:
            row = (await conn.execute(select(projects).where(projects.c.name == name))).first()
        if row is None:
            raise NotFound(f"no project named {name!r}")
        return _project(row)

    async def all(self) -> list[Project]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(projects).order_by(projects.c.name))
        return [_project(r) for r in rows]

    async def set_paused(self, project_id: str, paused: bool, by: str, reason: str) -> None:
        """On SQLite through the writer thread, as a kill: a second writer connection waits
        for the hot path's commits in SQLite's busy handler."""
        ts = now_ms()
        if self._writer is not None:

            def write(conn: sqlite3.Connection) -> None:
                conn.execute(_SET_PAUSED, (paused, by, reason, ts, project_id))
                conn.execute(_RECORD_CHANGE, (project_id, ts))

            await self._writer.transaction(write)
            return
        async with self._db.write() as conn:
            await conn.execute(
                update(projects)
                .where(projects.c.id == project_id)
                .values(paused=paused, state_by=by, state_reason=reason, state_at=ts)
            )
            await record_change(conn, "project", project_id)

    async def update(self, project_id: str, values: dict[str, object]) -> None:
        """Change settings (``upstream_base_url``, ``timezone``, approval settings)."""
        async with self._db.write() as conn:
            await conn.execute(update(projects).where(projects.c.id == project_id).values(**values))
            await record_change(conn, "project", project_id)
