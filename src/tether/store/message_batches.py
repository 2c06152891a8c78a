"""Message batches tether relayed: the agent, session and budget reservation of each, so
its results can be settled and a kill can cancel it, whichever process handles that."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from tether.clock import now_ms
from tether.records.message_batches import BatchRecord
from tether.store.database import Database
from tether.store.schema import message_batches

__all__ = ["MessageBatchStore"]


def _record(row: Any) -> BatchRecord:
    return BatchRecord(
        row.id,
        row.project_id,
        row.agent_id,
        row.session_id,
        row.reservation_id,
        json.loads(row.holds),
        json.loads(row.models),
        row.reserved_micros,
        row.created_at,
        row.canceled_at,
        row.settled_at,
        row.settled_micros,
    )


class MessageBatchStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: BatchRecord) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                message_batches.insert().values(
                    id=record.id,
                    project_id=record.project_id,
                    agent_id=record.agent_id,
                    session_id=record.session_id,
                    reservation_id=record.reservation_id,
                    holds=json.dumps(record.holds),
                    models=json.dumps(record.models),
                    reserved_micros=record.reserved_micros,
                    created_at=record.created_at,
                )
            )

    async def get(self, batch_id: str) -> BatchRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(message_batches).where(message_batches.c.id == batch_id))
            ).first()
        return _record(row) if row is not None else None

    async def open_batches(self) -> list[BatchRecord]:
        """Batches neither settled nor canceled by tether: those a kill must cancel."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(message_batches).where(
                    message_batches.c.settled_at.is_(None),
                    message_batches.c.canceled_at.is_(None),
                )
            )
        return [_record(r) for r in rows]

    async def canceled_unsettled(self) -> list[BatchRecord]:
        """Batches tether canceled and nobody settled yet: tether follows them until
        upstream ends them, then settles them itself."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(message_batches).where(
                    message_batches.c.settled_at.is_(None),
                    message_batches.c.canceled_at.is_not(None),
                )
            )
        return [_record(r) for r in rows]

    async def mark_canceled(self, batch_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                message_batches.update()
                .where(message_batches.c.id == batch_id, message_batches.c.canceled_at.is_(None))
                .values(canceled_at=now_ms())
            )

    async def claim_settlement(self, batch_id: str, micros: int) -> bool:
        """True for the one reader that settles the batch; False when it was settled."""
        async with self._db.write() as conn:
            result = await conn.execute(
                message_batches.update()
                .where(message_batches.c.id == batch_id, message_batches.c.settled_at.is_(None))
                .values(settled_at=now_ms(), settled_micros=micros)
            )
        return bool(result.rowcount)
