"""Upstream credentials, sealed with the master key; the plain value leaves only toward upstream."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tether.clock import new_id, now_ms
from tether.records.fleet import CredentialInfo
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import credentials
from tether.vault.sealed_box import SealedBox

__all__ = ["CredentialStore"]


def _context(project_id: str, provider: str) -> str:
    return f"credential:{project_id}:{provider}"


class CredentialStore:
    def __init__(self, db: Database, box: SealedBox) -> None:
        self._db = db
        self._box = box

    async def put(self, project_id: str, provider: str, secret: str) -> CredentialInfo:
        """Create or replace the project's credential for ``provider``."""
        ts = now_ms()
        sealed = self._box.seal(secret, _context(project_id, provider))
        insert = pg_insert if self._db.is_postgres else sqlite_insert
        statement = insert(credentials).values(
            id=new_id(),
            project_id=project_id,
            provider=provider,
            sealed=sealed,
            created_at=ts,
            updated_at=ts,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["project_id", "provider"],
            set_={"sealed": sealed, "updated_at": ts},
        )
        async with self._db.write() as conn:
            await conn.execute(statement)
            await record_change(conn, "credential", project_id)
            row = (
                await conn.execute(
                    select(credentials.c.created_at).where(
                        credentials.c.project_id == project_id, credentials.c.provider == provider
                    )
                )
            ).one()
        return CredentialInfo(project_id, provider, row.created_at, ts)

    async def of_project(self, project_id: str) -> list[CredentialInfo]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    credentials.c.project_id,
                    credentials.c.provider,
                    credentials.c.created_at,
                    credentials.c.updated_at,
                ).where(credentials.c.project_id == project_id)
            )
        return [CredentialInfo(r.project_id, r.provider, r.created_at, r.updated_at) for r in rows]

    async def reveal(self, project_id: str, provider: str) -> str | None:
        """The plain secret, for the forwarder only; never for an API response."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(credentials.c.sealed).where(
                        credentials.c.project_id == project_id, credentials.c.provider == provider
                    )
                )
            ).first()
        if row is None:
            return None
        return self._box.unseal(bytes(row.sealed), _context(project_id, provider))

    async def delete(self, project_id: str, provider: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                credentials.delete().where(
                    credentials.c.project_id == project_id, credentials.c.provider == provider
                )
            )
            await record_change(conn, "credential", project_id)
        return bool(result.rowcount)
