"""The candidate policy a project runs in shadow beside the one in force: at most one per
project, replaced by a new ``--shadow`` apply, removed when cleared or promoted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from tether.clock import now_ms
from tether.errors import Conflict, NotFound
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.policies import PolicyVersion, add_version, simultaneous
from tether.store.schema import policy_shadows

__all__ = ["PolicyShadow", "PolicyShadowStore"]

CHANGE_KIND = "policy_shadow"


@dataclass(frozen=True, slots=True)
class PolicyShadow:
    project_id: str
    source: str
    sha256: str
    created_at: int
    created_by: str


def _shadow(row: Any) -> PolicyShadow:
    return PolicyShadow(row.project_id, row.source, row.sha256, row.created_at, row.created_by)


class PolicyShadowStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, project_id: str, source: str, by: str) -> PolicyShadow:
        """``source`` (already validated) becomes the project's shadow, replacing any."""
        shadow = PolicyShadow(
            project_id, source, hashlib.sha256(source.encode()).hexdigest(), now_ms(), by
        )
        async with self._db.write() as conn:
            await conn.execute(
                delete(policy_shadows).where(policy_shadows.c.project_id == project_id)
            )
            await conn.execute(
                insert(policy_shadows).values(
                    project_id=project_id,
                    source=source,
                    sha256=shadow.sha256,
                    created_at=shadow.created_at,
                    created_by=by,
                )
            )
            await record_change(conn, CHANGE_KIND, project_id)
        return shadow

    async def get(self, project_id: str) -> PolicyShadow | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(policy_shadows).where(policy_shadows.c.project_id == project_id)
                )
            ).first()
        return _shadow(row) if row else None

    async def all(self) -> list[PolicyShadow]:
        async with self._db.read() as conn:
            return [_shadow(r) for r in await conn.execute(select(policy_shadows))]

    async def clear(self, project_id: str) -> bool:
        """Whether there was a shadow to remove."""
        async with self._db.write() as conn:
            removed = await conn.execute(
                delete(policy_shadows).where(policy_shadows.c.project_id == project_id)
            )
            if removed.rowcount:
                await record_change(conn, CHANGE_KIND, project_id)
        return bool(removed.rowcount)

    async def promote(self, project_id: str, sha256: str, by: str) -> PolicyVersion:
        """The shadow ``sha256`` names becomes the next policy version and stops being a
        shadow, in one transaction; a shadow replaced meanwhile is not promoted."""
        try:
            async with self._db.write() as conn:
                row = (
                    await conn.execute(
                        select(policy_shadows).where(policy_shadows.c.project_id == project_id)
                    )
                ).first()
                if row is None or row.sha256 != sha256:
                    raise NotFound(
                        "the shadow policy was replaced or cleared meanwhile; look again"
                    )
                version = await add_version(conn, project_id, row.source, by)
                await conn.execute(
                    delete(policy_shadows).where(policy_shadows.c.project_id == project_id)
                )
                await record_change(conn, CHANGE_KIND, project_id)
        except Conflict:
            raise simultaneous() from None
        return version
