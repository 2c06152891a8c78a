"""Notices when a settled call takes a budget past one of its thresholds (50/80/100 % by
default) and records the crossing, once per budget per period, with its deliveries."""

from __future__ import annotations

import asyncio
from typing import Any

from tether.budgets.definitions import Budget
from tether.identity.directory import AgentIdentity
from tether.store.alerts import AlertStore
from tether.store.budgets import PeriodUsage
from tether.store.records import SessionState
from tether.store.sessions import SessionStore

__all__ = ["BudgetAlerts"]

TOP = 3


class BudgetAlerts:
    def __init__(self, store: AlertStore, sessions: SessionStore) -> None:
        self._store = store
        self._sessions = sessions
        self._fired: set[tuple[str, str, int]] = set()
        self.wake = asyncio.Event()
        """Set when deliveries were queued, so the dispatcher sends them at once."""

    async def check(self, budget: Budget, usage: PeriodUsage, identity: AgentIdentity) -> list[int]:
        if budget.limit_micros is None or budget.limit_micros <= 0:
            return []
        percent = usage.spent_micros * 100 / budget.limit_micros
        crossed = [
            t
            for t in budget.thresholds
            if percent >= t and (budget.id, usage.period_key, t) not in self._fired
        ]
        if not crossed:
            return []
        top_sessions = await self._top_sessions(budget.project_id)
        payloads = {t: _payload(budget, usage, identity, t, percent, top_sessions) for t in crossed}
        fired = await self._store.fire(budget.project_id, budget.id, usage.period_key, payloads)
        self._fired.update((budget.id, usage.period_key, t) for t in crossed)
        if fired:
            self.wake.set()
        return fired

    async def _top_sessions(self, project_id: str) -> list[dict[str, Any]]:
        sessions = await self._sessions.find(project_id=project_id, limit=200)
        ranked = sorted(sessions, key=lambda s: s.cost_micros, reverse=True)[:TOP]
        return [
            {
                "session": s.id,
                "agent_id": s.agent_id,
                "cost_usd": s.cost_micros / 1e6,
                "state": s.state.value,
            }
            for s in ranked
            if s.state is not SessionState.PAUSED
        ]


def _payload(
    budget: Budget,
    usage: PeriodUsage,
    identity: AgentIdentity,
    threshold: int,
    percent: float,
    top_sessions: list[dict[str, Any]],
) -> dict[str, Any]:
    limit = (budget.limit_micros or 0) / 1e6
    return {
        "event": "budget.threshold",
        "project": identity.project.name,
        "budget": {
            "id": budget.id,
            "scope": budget.scope.value,
            "period": budget.period.value,
            "period_key": usage.period_key,
            "description": budget.describe(identity.project.name, identity.agent.name),
        },
        "threshold_percent": threshold,
        "percent_used": round(percent, 1),
        "spent_usd": usage.spent_micros / 1e6,
        "limit_usd": limit,
        "last_agent": identity.agent.name,
        "top_sessions": top_sessions,
    }
