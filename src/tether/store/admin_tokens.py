"""Admin tokens: separate from agent keys, each with a role (admin or viewer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound
from tether.records.fleet import AdminToken, Role
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import admin_tokens
from tether.vault.bearer import ADMIN_TOKEN_PREFIX, display_prefix, generate, hash_secret

__all__ = ["AdminTokenStore"]


def _token(row: Any) -> AdminToken:
    return AdminToken(
        id=row.id,
        name=row.name,
        token_hash=row.token_hash,
        prefix=row.prefix,
        role=Role(row.role),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class AdminTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, name: str, role: Role, secret: str | None = None
    ) -> tuple[AdminToken, str]:
        """Store a new token; ``secret`` lets an operator bring their own (TETHER_ADMIN_TOKEN)."""
        secret = secret or generate(ADMIN_TOKEN_PREFIX)
        token = AdminToken(
            new_id(), name, hash_secret(secret), display_prefix(secret), role, now_ms(), None
        )
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(admin_tokens).values(
                        id=token.id,
                        name=name,
                        token_hash=token.token_hash,
                        prefix=token.prefix,
                        role=role.value,
                        created_at=token.created_at,
                    )
                )
                await record_change(conn, "admin_token", token.id)
        except Conflict:
            raise Conflict(f"an admin token named {name!r} already exists") from None
        return token, secret

    async def all(self) -> list[AdminToken]:
        async with self._db.read() as conn:
            return [_token(r) for r in await conn.execute(select(admin_tokens).order_by("name"))]

    async def by_name(self, name: str) -> AdminToken | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(admin_tokens).where(admin_tokens.c.name == name))
            ).first()
        return _token(row) if row else None

    async def by_hash(self, token_hash: str) -> AdminToken | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(admin_tokens).where(admin_tokens.c.token_hash == token_hash)
                )
            ).first()
        return _token(row) if row else None

    async def revoke(self, name: str) -> None:
        async with self._db.write() as conn:
            result = await conn.execute(
                update(admin_tokens)
                .where(admin_tokens.c.name == name, admin_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
                .returning(admin_tokens.c.id)
            )
            token_id = result.scalar_one_or_none()
            if token_id is None:
                raise NotFound(f"no active admin token named {name!r}")
            await record_change(conn, "admin_token", token_id)
