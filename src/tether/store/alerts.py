"""Threshold crossings and the durable outbox that delivers them.

A crossing and its outbox rows commit in one transaction, and the crossing's primary key
(budget, period, threshold) makes a second firing impossible; delivery then retries from
the outbox until the receiver accepts, across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import new_id, now_ms
from tether.store.database import Database
from tether.store.schema import budget_alerts, outbox, webhooks

__all__ = ["AlertStore", "Delivery", "DeliveryState", "OutboxItem", "enqueue_deliveries"]

CLAIM_MS = 30_000


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: str
    webhook_id: str
    event: str
    payload: dict[str, Any]
    attempts: int


DeliveryState = Literal["delivered", "retrying", "failed"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row as an operator sees it: ``state`` is ``delivered``, ``retrying``
    (failed so far, tried again later) or ``failed`` (given up: dead letter)."""

    id: str
    webhook_id: str
    event: str
    state: DeliveryState
    attempts: int
    created_at: int
    next_attempt_at: int | None
    finished_at: int | None
    last_error: str | None


def _delivery(row: Any) -> Delivery:
    state: DeliveryState
    if row.delivered_at is not None:
        state, finished, next_at = "delivered", row.delivered_at, None
    elif row.dead_at is not None:
        state, finished, next_at = "failed", row.dead_at, None
    else:
        state, finished, next_at = "retrying", None, row.next_attempt_at
    return Delivery(
        row.id,
        row.webhook_id,
        row.event,
        state,
        row.attempts,
        row.created_at,
        next_at,
        finished,
        row.last_error,
    )


async def enqueue_deliveries(
    conn: AsyncConnection, project_id: str, event: str, payload: dict[str, Any], ts: int
) -> int:
    """Inside the writing transaction: one outbox row per webhook of the project."""
    targets = [
        row.id
        for row in await conn.execute(
            select(webhooks.c.id).where(webhooks.c.project_id == project_id)
        )
    ]
    body = orjson.dumps(payload).decode()
    for webhook_id in targets:
        await conn.execute(
            outbox.insert().values(
                id=new_id(),
                webhook_id=webhook_id,
                event=event,
                payload=body,
                created_at=ts,
                attempts=0,
                next_attempt_at=ts,
            )
        )
    return len(targets)


class AlertStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def fire(
        self,
        project_id: str,
        budget_id: str,
        period_key: str,
        payloads: dict[int, dict[str, Any]],
    ) -> list[int]:
        """Record crossings not recorded before, queueing one delivery per webhook of the
        project for each; returns the thresholds that fired now."""
        insert_ = pg_insert if self._db.is_postgres else sqlite_insert
        fired: list[int] = []
        ts = now_ms()
        async with self._db.write() as conn:
            for threshold, payload in sorted(payloads.items()):
                result = await conn.execute(
                    insert_(budget_alerts)
                    .values(
                        budget_id=budget_id, period_key=period_key, threshold=threshold, fired_at=ts
                    )
                    .on_conflict_do_nothing()
                )
                if result.rowcount != 1:
                    continue
                fired.append(threshold)
                await enqueue_deliveries(conn, project_id, "budget.threshold", payload, ts)
        return fired

    async def notify(self, project_id: str, event: str, payload: dict[str, Any]) -> int:
        """Queue one delivery of a one-off event per webhook of the project."""
        async with self._db.write() as conn:
            return await enqueue_deliveries(conn, project_id, event, payload, now_ms())

    async def claim_due(self, limit: int = 20) -> list[OutboxItem]:
        """Undelivered items whose time has come, claimed so no other replica sends them."""
        ts = now_ms()
        claimable = or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < ts)
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(outbox)
                    .where(
                        outbox.c.delivered_at.is_(None),
                        outbox.c.dead_at.is_(None),
                        outbox.c.next_attempt_at <= ts,
                        claimable,
                    )
                    .order_by(outbox.c.next_attempt_at)
                    .limit(limit)
                )
            ).all()
        claimed = []
        for row in rows:
            async with self._db.write() as conn:
                result = await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id, outbox.c.delivered_at.is_(None), claimable)
                    .values(claimed_until=ts + CLAIM_MS)
                )
            if result.rowcount == 1:
                claimed.append(
                    OutboxItem(
                        row.id, row.webhook_id, row.event, orjson.loads(row.payload), row.attempts
                    )
                )
        return claimed

    async def release(self, item_ids: list[str]) -> None:
        """Un-claim undelivered items at once."""
        async with self._db.write() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(item_ids), outbox.c.delivered_at.is_(None))
                .values(claimed_until=None)
            )

    async def delivered(self, item_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id)
                .values(delivered_at=now_ms(), claimed_until=None, last_error=None)
            )

    async def failed(self, item: OutboxItem, error: str, retry_in_ms: int) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item.id)
                .values(
                    attempts=item.attempts + 1,
                    next_attempt_at=now_ms() + retry_in_ms,
                    claimed_until=None,
                    last_error=error[:500],
                )
            )

    async def dead(self, item: OutboxItem, error: str) -> None:
        """Given up: the receiver refused the delivery for good; kept for the operator."""
        async with self._db.write() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item.id)
                .values(
                    attempts=item.attempts + 1,
                    dead_at=now_ms(),
                    claimed_until=None,
                    last_error=error[:500],
                )
            )

    async def deliveries(
        self, project_id: str, state: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Newest first; ``state`` filters to ``delivered``, ``retrying`` or ``failed``."""
        query = (
            select(outbox)
            .join(webhooks, webhooks.c.id == outbox.c.webhook_id)
            .where(webhooks.c.project_id == project_id)
            .order_by(outbox.c.created_at.desc(), outbox.c.id.desc())
            .limit(limit)
        )
        if state == "delivered":
            query = query.where(outbox.c.delivered_at.is_not(None))
        elif state == "failed":
            query = query.where(outbox.c.delivered_at.is_(None), outbox.c.dead_at.is_not(None))
        elif state == "retrying":
            query = query.where(outbox.c.delivered_at.is_(None), outbox.c.dead_at.is_(None))
        async with self._db.read() as conn:
            return [_delivery(row) for row in await conn.execute(query)]
