"""Agents' AWS access key pairs for the credential broker.

The secret is sealed with the master key (not hashed): SigV4 verification recomputes the
signature, which needs the secret itself. Issuing a pair revokes the agent's previous one;
nothing here touches another agent's pair.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from tether.clock import new_id, now_ms
from tether.records.fleet import AgentAwsKey
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import agent_aws_keys
from tether.vault.sealed_box import SealedBox

__all__ = ["AWS_KEY_ID_PREFIX", "AwsKeyStore", "IssuedAwsKey"]

AWS_KEY_ID_PREFIX = "AKTT"
"""Access key ids tether issues start with this (real AWS ones start with AKIA/ASIA)."""
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True, slots=True)
class IssuedAwsKey:
    """A fresh pair: ``secret_access_key`` exists only here and in the API response."""

    key: AgentAwsKey
    secret_access_key: str


def _context(agent_id: str, access_key_id: str) -> str:
    return f"agent-aws-key:{agent_id}:{access_key_id}"


def _row(row: Any) -> AgentAwsKey:
    return AgentAwsKey(
        id=row.id,
        agent_id=row.agent_id,
        access_key_id=row.access_key_id,
        sealed_secret=bytes(row.sealed_secret),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class AwsKeyStore:
    def __init__(self, db: Database, box: SealedBox) -> None:
        self._db = db
        self._box = box

    def reveal(self, key: AgentAwsKey) -> str:
        """The plain secret, for SigV4 verification only."""
        return self._box.unseal(key.sealed_secret, _context(key.agent_id, key.access_key_id))

    async def issue(self, agent_id: str) -> IssuedAwsKey:
        """A new pair for the agent; its previous pairs are revoked in the same write."""
        access_key_id = AWS_KEY_ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        ts = now_ms()
        key = AgentAwsKey(
            id=new_id(),
            agent_id=agent_id,
            access_key_id=access_key_id,
            sealed_secret=self._box.seal(secret, _context(agent_id, access_key_id)),
            created_at=ts,
            revoked_at=None,
        )
        async with self._db.write() as conn:
            await conn.execute(
                update(agent_aws_keys)
                .where(agent_aws_keys.c.agent_id == agent_id, agent_aws_keys.c.revoked_at.is_(None))
                .values(revoked_at=ts)
            )
            await conn.execute(
                insert(agent_aws_keys).values(
                    id=key.id,
                    agent_id=agent_id,
                    access_key_id=access_key_id,
                    sealed_secret=key.sealed_secret,
                    created_at=ts,
                )
            )
            await record_change(conn, "agent", agent_id)
        return IssuedAwsKey(key=key, secret_access_key=secret)

    async def revoke(self, agent_id: str) -> int:
        """Revoke the agent's live pairs; how many there were."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(agent_aws_keys)
                .where(agent_aws_keys.c.agent_id == agent_id, agent_aws_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
            )
            await record_change(conn, "agent", agent_id)
        return int(result.rowcount or 0)

    async def of_agent(self, agent_id: str) -> list[AgentAwsKey]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(agent_aws_keys)
                .where(agent_aws_keys.c.agent_id == agent_id)
                .order_by(agent_aws_keys.c.created_at)
            )
        return [_row(r) for r in rows]

    async def live_of(self, agent_ids: list[str]) -> list[AgentAwsKey]:
        """The live (unrevoked) broker key pairs of ``agent_ids``."""
        if not agent_ids:
            return []
        query = select(agent_aws_keys).where(
            agent_aws_keys.c.agent_id.in_(agent_ids), agent_aws_keys.c.revoked_at.is_(None)
        )
        async with self._db.read() as conn:
            return [_row(r) for r in await conn.execute(query)]

    async def by_access_key_id(self, access_key_id: str) -> AgentAwsKey | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(agent_aws_keys).where(agent_aws_keys.c.access_key_id == access_key_id)
                )
            ).first()
        return _row(row) if row is not None else None

    async def all(self) -> list[AgentAwsKey]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(agent_aws_keys))
        return [_row(r) for r in rows]
