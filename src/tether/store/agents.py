"""Agents and their keys. A key is returned in plain text once, at issue; only its hash is kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound
from tether.records.fleet import Agent, AgentKey, AgentState
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.plain_sql import PlainStatement
from tether.store.schema import agent_keys, agents
from tether.store.sqlite_writer import SqliteWriter
from tether.vault.bearer import AGENT_KEY_PREFIX, display_prefix, generate, hash_secret

__all__ = ["AgentStore", "IssuedKey"]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly issued key: ``secret`` exists only in this object and the API response."""

    key: AgentKey
    secret: str


def _agent(row: Any) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        project_id=row.project_id,
        state=AgentState(row.state),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        state_by=row.state_by,
        state_reason=row.state_reason,
    )


def _key(row: Any) -> AgentKey:
    return AgentKey(
        id=row.id,
        agent_id=row.agent_id,
        key_hash=row.key_hash,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


async def _issue_key(conn: AsyncConnection, agent_id: str) -> IssuedKey:
    secret = generate(AGENT_KEY_PREFIX)
    key = AgentKey(
        id=new_id(),
        agent_id=agent_id,
        key_hash=hash_secret(secret),
        prefix=display_prefix(secret),
        created_at=now_ms(),
        expires_at=None,
        revoked_at=None,
    )
    await conn.execute(
        insert(agent_keys).values(
            id=key.id,
            agent_id=agent_id,
            key_hash=key.key_hash,
            prefix=key.prefix,
            created_at=key.created_at,
        )
    )
    return IssuedKey(key=key, secret=secret)


def _live(at_ms: int) -> Any:
    return and_(
        agent_keys.c.revoked_at.is_(None),
        or_(agent_keys.c.expires_at.is_(None), agent_keys.c.expires_at > at_ms),
    )


_NOTE_USE = (
    update(agent_keys)
    .where(agent_keys.c.id == bindparam("key_id"))
    .values(
        last_used_at=case(
            (
                or_(
                    agent_keys.c.last_used_at.is_(None),
                    agent_keys.c.last_used_at < bindparam("at"),
                ),
                bindparam("at"),
            ),
            else_=agent_keys.c.last_used_at,
        )
    )
)
_NOTE_USE_PLAIN = PlainStatement.of(_NOTE_USE)


class AgentStore:
    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def create(self, name: str, project_id: str, description: str) -> tuple[Agent, IssuedKey]:
        ts = now_ms()
        agent = Agent(new_id(), name, project_id, AgentState.ACTIVE, description, ts, ts)
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(agents).values(
                        id=agent.id,
                        name=name,
                        project_id=project_id,
                        state=agent.state.value,
                        description=description,
                        created_at=ts,
                        updated_at=ts,
                    )
                )
                issued = await _issue_key(conn, agent.id)
                await record_change(conn, "agent", agent.id)
        except Conflict:
            raise Conflict(f"an agent named {name!r} already exists; pick another name") from None
        return agent, issued

    async def by_name(self, name: str) -> Agent:
        async with self._db.read() as conn:
            row = (await conn.execute(select(agents).where(agents.c.name == name))).first()
        if row is None:
            raise NotFound(f"no agent named {name!r}")
        return _agent(row)

    async def get(self, agent_id: str) -> Agent | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(agents).where(agents.c.id == agent_id))).first()
        return _agent(row) if row else None

    async def all(self, project_id: str | None = None) -> list[Agent]:
        query = select(agents).order_by(agents.c.name)
        if project_id is not None:
            query = query.where(agents.c.project_id == project_id)
        async with self._db.read() as conn:
            return [_agent(r) for r in await conn.execute(query)]

    async def set_state(self, agent_id: str, state: AgentState, by: str, reason: str = "") -> None:
        """Revoking also revokes every key, so a later release cannot revive them."""
        ts = now_ms()
        async with self._db.write() as conn:
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(state=state.value, updated_at=ts, state_by=by, state_reason=reason)
            )
            if state is AgentState.REVOKED:
                await conn.execute(
                    update(agent_keys)
                    .where(agent_keys.c.agent_id == agent_id, agent_keys.c.revoked_at.is_(None))
                    .values(revoked_at=ts)
                )
            await record_change(conn, "agent", agent_id)

    async def rotate_key(self, agent_id: str, grace_ms: int) -> tuple[IssuedKey, int]:
        """Issue a new key; the agent's current keys stop working at the returned time, or
        sooner if they were due to already (a key rotated out before keeps its end)."""
        ts = now_ms()
        async with self._db.write() as conn:
            ends = ts + grace_ms
            await conn.execute(
                update(agent_keys)
                .where(agent_keys.c.agent_id == agent_id, _live(ts))
                .values(
                    expires_at=case(
                        (agent_keys.c.expires_at.is_not(None) & (agent_keys.c.expires_at < ends),
                         agent_keys.c.expires_at),
                        else_=ends,
                    )
                )
            )  # fmt: skip
            issued = await _issue_key(conn, agent_id)
            await record_change(conn, "agent", agent_id)
        return issued, ts + grace_ms

    async def keys(self, agent_id: str) -> list[AgentKey]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(agent_keys)
                .where(agent_keys.c.agent_id == agent_id)
                .order_by(agent_keys.c.created_at)
            )
        return [_key(r) for r in rows]

    async def live_keys(self, agent_id: str | None = None) -> list[AgentKey]:
        query = select(agent_keys).where(_live(now_ms()))
        if agent_id is not None:
            query = query.where(agent_keys.c.agent_id == agent_id)
        async with self._db.read() as conn:
            return [_key(r) for r in await conn.execute(query)]

    async def record_key_use(self, used: dict[str, int]) -> None:
        """Move each key's ``last_used_at`` forward (never back: replicas flush in any
        order), in one statement, in key-id order so concurrent flushes cannot deadlock."""
        if not used:
            return
        rows = [{"key_id": key_id, "at": at} for key_id, at in sorted(used.items())]
        if self._writer is not None:
            values = _NOTE_USE_PLAIN.rows(rows)
            await self._writer.transaction(lambda c: c.executemany(_NOTE_USE_PLAIN.sql, values))
            return
        async with self._db.write() as conn:
            await conn.execute(_NOTE_USE, rows)

    async def key_by_hash(self, key_hash: str) -> AgentKey | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(agent_keys).where(agent_keys.c.key_hash == key_hash))
            ).first()
        return _key(row) if row else None
