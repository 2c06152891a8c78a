"""Budget definitions, their period totals, and the release of abandoned reservations.

Reserving and settling (the hot path) live in ``budget_ledger``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update

from tether.budgets.definitions import Budget, BudgetPeriod, BudgetScope
from tether.errors import NotFound
from tether.store.changes import record_change
from tether.store.clock import new_id, now_ms
from tether.store.database import Database
from tether.store.schema import budget_periods, budget_reservations, budgets

__all__ = ["BudgetStore", "Hold", "PeriodUsage"]


@dataclass(frozen=True, slots=True)
class Hold:
    """One budget's part of a reservation."""

    budget: Budget
    period_key: str
    period_end: int | None
    micros: int
    tokens: int


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    """A budget's part of a reservation that was never settled, charged as reserved."""

    reservation_id: str
    budget_id: str
    period_key: str
    micros: int
    tokens: int


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

    async def charge_expired(self, at_ms: int) -> list[ExpiredHold]:
        """Holds whose call never settled (a crash, a store outage longer than the hold):
        charged at what was reserved — the call may have run, and upstream bills it — and
        no longer held, so a settlement arriving late cannot charge them again."""
        async with self._db.write() as conn:
            expired = (
                await conn.execute(
                    delete(budget_reservations)
                    .where(budget_reservations.c.expires_at < at_ms)
                    .returning(
                        budget_reservations.c.id,
                        budget_reservations.c.budget_id,
                        budget_reservations.c.period_key,
                        budget_reservations.c.micros,
                        budget_reservations.c.tokens,
                    )
                )
            ).all()
            for row in sorted(expired, key=lambda row: (row.budget_id, row.period_key)):
                await conn.execute(
                    update(budget_periods)
                    .where(
                        budget_periods.c.budget_id == row.budget_id,
                        budget_periods.c.period_key == row.period_key,
                    )
                    .values(
                        reserved_micros=budget_periods.c.reserved_micros - row.micros,
                        reserved_tokens=budget_periods.c.reserved_tokens - row.tokens,
                        spent_micros=budget_periods.c.spent_micros + row.micros,
                        spent_tokens=budget_periods.c.spent_tokens + row.tokens,
                    )
                )
        return [ExpiredHold(r.id, r.budget_id, r.period_key, r.micros, r.tokens) for r in expired]

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
