"""Client addresses per agent key and hour, for the readiness check that warns of a shared
key. Written in batches by ``KeyUse``; kept ``KEEP_MS`` and pruned as it is written."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tether.store.database import Database
from tether.store.plain_sql import PlainStatement
from tether.store.schema import agent_key_addresses
from tether.store.sqlite_writer import SqliteWriter

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


def _adding(insert_: Any) -> Any:
    """Add a key's uses and switches from an address in an hour; built once."""
    statement = insert_(agent_key_addresses).values(
        {name: bindparam(name) for name in ("key_id", "hour", "address", "uses", "switches")}
    )
    return statement.on_conflict_do_update(
        index_elements=["key_id", "hour", "address"],
        set_={
            "uses": agent_key_addresses.c.uses + statement.excluded.uses,
            "switches": agent_key_addresses.c.switches + statement.excluded.switches,
        },
    )


_ADD = {True: _adding(pg_insert), False: _adding(sqlite_insert)}
_PRUNE = delete(agent_key_addresses).where(agent_key_addresses.c.hour < bindparam("oldest"))
_ADD_PLAIN, _PRUNE_PLAIN = PlainStatement.of(_ADD[False]), PlainStatement.of(_PRUNE)


class KeyAddressStore:
    """On SQLite, written through the writer thread (``PlainStatement``)."""

    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def add(self, seen: dict[AddressUse, tuple[int, int]]) -> None:
        """Add (uses, switches) per key, hour and address; drop hours older than KEEP_MS.
        Rows in key order, so concurrent flushes from replicas cannot deadlock."""
        if not seen:
            return
        rows = [
            {
                "key_id": use.key_id,
                "hour": use.hour,
                "address": use.address,
                "uses": uses,
                "switches": switches,
            }
            for use, (uses, switches) in sorted(seen.items())
        ]
        oldest = {"oldest": min(use.hour for use in seen) - KEEP_MS}
        if self._writer is not None:
            values, prune = _ADD_PLAIN.rows(rows), _PRUNE_PLAIN.rows([oldest])[0]

            def write(conn: sqlite3.Connection) -> None:
                conn.executemany(_ADD_PLAIN.sql, values)
                conn.execute(_PRUNE_PLAIN.sql, prune)

            await self._writer.transaction(write)
            return
        async with self._db.write() as conn:
            await conn.execute(_ADD[self._db.is_postgres], rows)
            await conn.execute(_PRUNE, oldest)

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
