"""Client addresses per agent key and hour, for the readiness check that warns of a shared
key. Written in batches by ``KeyUse``; kept ``KEEP_MS`` and pruned as it is written."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tether.store.database import Database
from tether.store.schema import agent_key_addresses

__all__ = ["HOUR_MS", "KEEP_MS", "AddressUse", "KeyAddressStore", "SharedHour"]

HOUR_MS = 3_600_000
KEEP_MS = 8 * 24 * HOUR_MS


@dataclass(frozen=True, slots=True, order=True)
class AddressUse:
    key_id: str
    hour: int
    address: str


@dataclass(frozen=True, slots=True)
class SharedHour:
    """An hour in which one key was used from more than one address."""

    key_id: str
    hour: int
    addresses: int
    switches: int


class KeyAddressStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, seen: dict[AddressUse, tuple[int, int]]) -> None:
        """Add (uses, switches) per key, hour and address; drop hours older than KEEP_MS.
        Rows in key order, so concurrent flushes from replicas cannot deadlock."""
        if not seen:
            return
        insert_ = pg_insert if self._db.is_postgres else sqlite_insert
        oldest = min(use.hour for use in seen) - KEEP_MS
        async with self._db.write() as conn:
            for use, (uses, switches) in sorted(seen.items()):
                statement = insert_(agent_key_addresses).values(
                    key_id=use.key_id,
                    hour=use.hour,
                    address=use.address,
                    uses=uses,
                    switches=switches,
                )
                statement = statement.on_conflict_do_update(
                    index_elements=["key_id", "hour", "address"],
                    set_={
                        "uses": agent_key_addresses.c.uses + statement.excluded.uses,
                        "switches": agent_key_addresses.c.switches + statement.excluded.switches,
                    },
                )
                await conn.execute(statement)
            await conn.execute(
                delete(agent_key_addresses).where(agent_key_addresses.c.hour < oldest)
            )

    async def shared_hours(self, key_ids: list[str], since_ms: int) -> list[SharedHour]:
        """Hours since ``since_ms`` in which one of ``key_ids`` was used from 2+ addresses."""
        if not key_ids:
            return []
        query = (
            select(
                agent_key_addresses.c.key_id,
                agent_key_addresses.c.hour,
                func.count().label("addresses"),
                func.sum(agent_key_addresses.c.switches).label("switches"),
            )
            .where(
                agent_key_addresses.c.key_id.in_(key_ids),
                agent_key_addresses.c.hour >= since_ms - since_ms % HOUR_MS,
            )
            .group_by(agent_key_addresses.c.key_id, agent_key_addresses.c.hour)
            .having(func.count() > 1)
        )
        async with self._db.read() as conn:
            rows = await conn.execute(query)
            return [SharedHour(r.key_id, r.hour, r.addresses, int(r.switches)) for r in rows]

    async def addresses(self, key_id: str, since_ms: int, limit: int = 5) -> list[str]:
        """The addresses that used ``key_id`` since ``since_ms``, most used first."""
        query = (
            select(agent_key_addresses.c.address)
            .where(
                agent_key_addresses.c.key_id == key_id,
                agent_key_addresses.c.hour >= since_ms - since_ms % HOUR_MS,
            )
            .group_by(agent_key_addresses.c.address)
            .order_by(func.sum(agent_key_addresses.c.uses).desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [r.address for r in await conn.execute(query)]
