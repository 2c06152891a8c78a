"""Policy versions per project: append-only; the newest version is the one in force."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import now_ms
from tether.errors import Conflict
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import policies

__all__ = ["PolicyStore", "PolicyVersion", "add_version", "simultaneous"]


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    project_id: str
    version: int
    source: str
    sha256: str
    created_at: int
    created_by: str


def _version(row: Any) -> PolicyVersion:
    return PolicyVersion(
        row.project_id, row.version, row.source, row.sha256, row.created_at, row.created_by
    )


def simultaneous() -> Conflict:
    return Conflict(
        "another policy version was applied to this project at the same moment; "
        "check `tether policy show` and apply again"
    )


async def add_version(
    conn: AsyncConnection, project_id: str, source: str, by: str
) -> PolicyVersion:
    """Inside the caller's write transaction: ``source`` becomes the next version."""
    latest = (
        await conn.execute(
            select(func.coalesce(func.max(policies.c.version), 0)).where(
                policies.c.project_id == project_id
            )
        )
    ).scalar_one()
    digest = hashlib.sha256(source.encode()).hexdigest()
    version = PolicyVersion(project_id, int(latest) + 1, source, digest, now_ms(), by)
    await conn.execute(
        insert(policies).values(
            project_id=project_id,
            version=version.version,
            source=source,
            sha256=digest,
            created_at=version.created_at,
            created_by=by,
        )
    )
    await record_change(conn, "policy", project_id)
    return version


class PolicyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, project_id: str, source: str, by: str) -> PolicyVersion:
        """Store ``source`` (already validated) as the next version; replicas reload it
        through the change log."""
        try:
            async with self._db.write() as conn:
                return await add_version(conn, project_id, source, by)
        except Conflict:
            raise simultaneous() from None

    async def current(self, project_id: str) -> PolicyVersion | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(policies)
                    .where(policies.c.project_id == project_id)
                    .order_by(policies.c.version.desc())
                    .limit(1)
                )
            ).first()
        return _version(row) if row else None

    async def get(self, project_id: str, version: int) -> PolicyVersion | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(policies).where(
                        policies.c.project_id == project_id, policies.c.version == version
                    )
                )
            ).first()
        return _version(row) if row else None

    async def history(self, project_id: str) -> list[PolicyVersion]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(policies)
                .where(policies.c.project_id == project_id)
                .order_by(policies.c.version.desc())
            )
        return [_version(r) for r in rows]

    async def all_current(self) -> list[PolicyVersion]:
        newest = (
            select(policies.c.project_id, func.max(policies.c.version).label("version"))
            .group_by(policies.c.project_id)
            .subquery()
        )
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(policies).join(
                    newest,
                    (policies.c.project_id == newest.c.project_id)
                    & (policies.c.version == newest.c.version),
                )
            )
        return [_version(r) for r in rows]
