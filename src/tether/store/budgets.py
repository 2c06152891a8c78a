"""Budget definitions, their period totals, and the reservations a crash left unsettled.

Reserving and settling (the hot path) live in ``budget_ledger``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update

from tether.clock import new_id, now_ms
from tether.errors import BadRequest, NotFound
from tether.records.budgets import Budget, BudgetPeriod, BudgetScope
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import budget_periods, budget_reservations, budgets

__all__ = ["BudgetStore", "ExpiredHold", "Hold", "PeriodUsage", "UnsettledHold"]


@dataclass(frozen=True, slots=True)
class Hold:
    """One budget's part of a reservation."""

    budget: Budget
    period_key: str
    period_end: int | None
    micros: int
    tokens: int
    fresh: bool = False
    """The period is known to be empty and no one else can charge it yet: a session's own
    period on the call that made the session, whose row is still on its way."""


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    """A budget's part of a reservation whose call never settled it (its process died, or
    could not reach the store for longer than the hold): now unsettled."""

    reservation_id: str
    budget_id: str
    period_key: str
    micros: int
    tokens: int


@dataclass(frozen=True, slots=True)
class UnsettledHold:
    """An unsettled reservation part as operators see and settle it."""

    reservation_id: str
    budget_id: str
    period_key: str
    micros: int
    tokens: int
    unsettled_at: int
    charged_micros: int = 0
    """Once settled: what was charged."""


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    budget_id: str
    period_key: str
    spent_micros: int
    reserved_micros: int
    spent_tokens: int
    reserved_tokens: int
    period_end: int | None


def _budget(row: Any) -> Budget:
    return Budget(
        id=row.id,
        project_id=row.project_id,
        agent_id=row.agent_id,
        scope=BudgetScope(row.scope),
        period=BudgetPeriod(row.period),
        limit_micros=row.limit_micros,
        limit_tokens=row.limit_tokens,
        thresholds=tuple(json.loads(row.thresholds)),
        updated_by=row.updated_by,
    )


def _usage(row: Any) -> PeriodUsage:
    return PeriodUsage(
        row.budget_id,
        row.period_key,
        row.spent_micros,
        row.reserved_micros,
        row.spent_tokens,
        row.reserved_tokens,
        row.period_end,
    )


class BudgetStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self,
        project_id: str,
        agent_id: str | None,
        scope: BudgetScope,
        period: BudgetPeriod,
        limit_micros: int | None,
        limit_tokens: int | None,
        thresholds: Sequence[int],
        by: str,
    ) -> Budget:
        """Create the budget, or change the one with the same scope and period."""
        ts = now_ms()
        values = {
            "limit_micros": limit_micros,
            "limit_tokens": limit_tokens,
            "thresholds": json.dumps(sorted(set(thresholds))),
            "updated_at": ts,
            "updated_by": by,
        }
        same = and_(
            budgets.c.project_id == project_id,
            budgets.c.scope == scope.value,
            budgets.c.period == period.value,
            budgets.c.agent_id.is_(None) if agent_id is None else budgets.c.agent_id == agent_id,
        )
        async with self._db.write() as conn:
            existing = (await conn.execute(select(budgets.c.id).where(same))).scalar_one_or_none()
            if existing is None:
                existing = new_id()
                await conn.execute(
                    insert(budgets).values(
                        id=existing,
                        project_id=project_id,
                        agent_id=agent_id,
                        scope=scope.value,
                        period=period.value,
                        created_at=ts,
                        **values,
                    )
                )
            else:
                await conn.execute(update(budgets).where(budgets.c.id == existing).values(**values))
            await record_change(conn, "budget", existing)
            row = (await conn.execute(select(budgets).where(budgets.c.id == existing))).one()
        return _budget(row)

    async def all(self) -> list[Budget]:
        async with self._db.read() as conn:
            return [_budget(r) for r in await conn.execute(select(budgets))]

    async def delete(self, budget_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                delete(budget_reservations).where(budget_reservations.c.budget_id == budget_id)
            )
            await conn.execute(
                delete(budget_periods).where(budget_periods.c.budget_id == budget_id)
            )
            result = await conn.execute(delete(budgets).where(budgets.c.id == budget_id))
            if not result.rowcount:
                raise NotFound(f"no budget {budget_id!r}")
            await record_change(conn, "budget", budget_id)

    async def mark_unsettled(self, at_ms: int) -> list[ExpiredHold]:
        """Holds whose call never settled (a crash, a store outage longer than the hold)
        become unsettled: not spent — nobody knows yet what the call cost — but still
        reserved, so the budget cannot be overspent meanwhile. A settlement arriving late
        (upstream's usage) or an operator (``settle_unsettled``) settles them."""
        async with self._db.write() as conn:
            marked = (
                await conn.execute(
                    update(budget_reservations)
                    .where(
                        budget_reservations.c.expires_at < at_ms,
                        budget_reservations.c.unsettled_at.is_(None),
                    )
                    .values(unsettled_at=at_ms)
                    .returning(
                        budget_reservations.c.id,
                        budget_reservations.c.budget_id,
                        budget_reservations.c.period_key,
                        budget_reservations.c.micros,
                        budget_reservations.c.tokens,
                    )
                )
            ).all()
        return [ExpiredHold(r.id, r.budget_id, r.period_key, r.micros, r.tokens) for r in marked]

    async def unsettled(self, budget_ids: Sequence[str] | None = None) -> list[UnsettledHold]:
        """Unsettled reservation parts, oldest first (of these budgets, when given)."""
        query = select(budget_reservations).where(budget_reservations.c.unsettled_at.is_not(None))
        if budget_ids is not None:
            query = query.where(budget_reservations.c.budget_id.in_(list(budget_ids)))
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(budget_reservations.c.unsettled_at))).all()
        return [
            UnsettledHold(r.id, r.budget_id, r.period_key, r.micros, r.tokens, r.unsettled_at)
            for r in rows
        ]

    async def settle_unsettled(
        self, reservation_id: str, budget_ids: Sequence[str], micros: int | None
    ) -> list[UnsettledHold]:
        """Settle an unsettled reservation (its parts in ``budget_ids``): charge ``micros``
        — at most what it held; None charges what it held — and release the rest."""
        async with self._db.write() as conn:
            rows = (
                await conn.execute(
                    delete(budget_reservations)
                    .where(
                        budget_reservations.c.id == reservation_id,
                        budget_reservations.c.budget_id.in_(list(budget_ids)),
                        budget_reservations.c.unsettled_at.is_not(None),
                    )
                    .returning(*budget_reservations.c)
                )
            ).all()
            if not rows:
                raise NotFound(
                    f"no unsettled reservation {reservation_id!r}; "
                    "'tether budgets list --unsettled' shows them"
                )
            settled = []
            for row in sorted(rows, key=lambda row: (row.budget_id, row.period_key)):
                if micros is not None and micros > row.micros:
                    raise BadRequest(
                        f"reservation {reservation_id} held ${row.micros / 1e6:.6f}; "
                        "a settlement may charge at most that"
                    )
                charge_m = row.micros if micros is None else micros
                charge_t = row.tokens if micros is None else 0
                await conn.execute(
                    update(budget_periods)
                    .where(
                        budget_periods.c.budget_id == row.budget_id,
                        budget_periods.c.period_key == row.period_key,
                    )
                    .values(
                        reserved_micros=budget_periods.c.reserved_micros - row.micros,
                        reserved_tokens=budget_periods.c.reserved_tokens - row.tokens,
                        spent_micros=budget_periods.c.spent_micros + charge_m,
                        spent_tokens=budget_periods.c.spent_tokens + charge_t,
                    )
                )
                settled.append(
                    UnsettledHold(
                        row.id,
                        row.budget_id,
                        row.period_key,
                        row.micros,
                        row.tokens,
                        row.unsettled_at,
                        charge_m,
                    )
                )
        return settled

    async def usage(self, budget_id: str, period_key: str) -> PeriodUsage | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(budget_periods).where(
                        budget_periods.c.budget_id == budget_id,
                        budget_periods.c.period_key == period_key,
                    )
                )
            ).first()
        return _usage(row) if row else None
