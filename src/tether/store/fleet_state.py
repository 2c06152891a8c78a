"""What the fleet looks like now, read for ``/metrics`` at scrape time: budget levels,
sessions by state, approvals waiting, webhook deliveries failing. Small aggregate
queries over indexed columns; never on the request path."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select

from tether.store.database import Database
from tether.store.schema import approvals, budget_periods, budgets, outbox, projects, sessions

__all__ = ["BudgetLevel", "FleetState"]

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class BudgetLevel:
    budget_id: str
    project: str
    scope: str
    period: str
    limit_usd: float | None
    spent_usd: float
    reserved_usd: float


class FleetState:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def budget_levels(self, now_ms: int) -> list[BudgetLevel]:
        """Each daily or monthly budget in its current period (a budget without spend in
        it yet reads 0); per-session budgets have one period per session, so none here."""
        current = and_(
            budget_periods.c.budget_id == budgets.c.id,
            or_(budget_periods.c.period_end.is_(None), budget_periods.c.period_end > now_ms),
        )
        query = (
            select(
                budgets.c.id,
                projects.c.name,
                budgets.c.scope,
                budgets.c.period,
                budgets.c.limit_micros,
                func.coalesce(func.sum(budget_periods.c.spent_micros), 0),
                func.coalesce(func.sum(budget_periods.c.reserved_micros), 0),
            )
            .join(projects, projects.c.id == budgets.c.project_id)
            .outerjoin(budget_periods, current)
            .where(budgets.c.period != "session")
            .group_by(
                budgets.c.id,
                projects.c.name,
                budgets.c.scope,
                budgets.c.period,
                budgets.c.limit_micros,
            )
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            BudgetLevel(
                row[0],
                row[1],
                row[2],
                row[3],
                None if row[4] is None else row[4] / MICROS,
                row[5] / MICROS,
                row[6] / MICROS,
            )
            for row in rows
        ]

    async def sessions_by_state(self) -> dict[tuple[str, str], int]:
        """(project name, state) → sessions."""
        query = (
            select(projects.c.name, sessions.c.state, func.count())
            .join(projects, projects.c.id == sessions.c.project_id)
            .group_by(projects.c.name, sessions.c.state)
        )
        async with self._db.read() as conn:
            return {(r[0], r[1]): r[2] for r in await conn.execute(query)}

    async def approvals_pending(self, now_ms: int) -> dict[str, int]:
        """Project name → approvals waiting for a human and not yet expired."""
        query = (
            select(projects.c.name, func.count())
            .join(projects, projects.c.id == approvals.c.project_id)
            .where(approvals.c.state == "pending", approvals.c.expires_at > now_ms)
            .group_by(projects.c.name)
        )
        async with self._db.read() as conn:
            return {r[0]: r[1] for r in await conn.execute(query)}

    async def webhook_failures(self) -> dict[str, int]:
        """``retrying``: undelivered deliveries whose last attempt failed; ``dead``: given up."""
        query = select(
            func.count().filter(
                outbox.c.dead_at.is_(None),
                outbox.c.delivered_at.is_(None),
                outbox.c.last_error.is_not(None),
            ),
            func.count().filter(outbox.c.dead_at.is_not(None)),
        )
        async with self._db.read() as conn:
            retrying, dead = (await conn.execute(query)).one()
        return {"retrying": retrying, "dead": dead}
