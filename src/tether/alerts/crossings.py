"""Notices when a settled call takes a budget past one of its thresholds (50/80/100 % by
default) and records the crossing, once per budget per period, with its deliveries."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from tether.errors import TetherError
from tether.identity.directory import AgentIdentity, Directory
from tether.records.budgets import Budget
from tether.sessions.registry import SessionRegistry
from tether.store.alerts import AlertStore
from tether.store.budgets import PeriodUsage
from tether.store.sessions import SessionStore
from tether.store.spend import SpendStore

__all__ = ["BudgetAlerts"]

TOP = 3
FIRED_KEPT = 10_000
"""Crossings remembered to skip the store; a forgotten one is found already recorded there."""


class BudgetAlerts:
    def __init__(
        self,
        store: AlertStore,
        sessions: SessionStore,
        spend: SpendStore,
        directory: Directory,
        registry: SessionRegistry,
    ) -> None:
        self._registry = registry
        self._directory = directory
        self._store = store
        self._sessions = sessions
        self._spend = spend
        self._fired: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self.wake = asyncio.Event()
        """Set when deliveries were queued, so the dispatcher sends them at once."""

    def remembered(self) -> int:
        return len(self._fired)

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
        with contextlib.suppress(TetherError):
            await self._registry.flush()
        top_sessions = await self._top_sessions(budget.project_id)
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        agents = await self._spend.report("agent", project_id=budget.project_id, since_day=today)
        top_agents = [
            {"agent": self._agent_name(a["agent_id"]), "cost_usd_today": a["cost_micros"] / 1e6}
            for a in agents[:TOP]
        ]
        payloads = {
            t: _payload(budget, usage, identity, t, percent, top_sessions, top_agents)
            for t in crossed
        }
        fired = await self._store.fire(budget.project_id, budget.id, usage.period_key, payloads)
        for t in crossed:
            self._fired[(budget.id, usage.period_key, t)] = None
        while len(self._fired) > FIRED_KEPT:
            self._fired.popitem(last=False)
        if fired:
            self.wake.set()
        return fired

    def _agent_name(self, agent_id: str) -> str:
        agent = self._directory.agent(agent_id)
        return agent.name if agent else agent_id

    async def _top_sessions(self, project_id: str) -> list[dict[str, Any]]:
        sessions = await self._sessions.find(project_id=project_id, limit=200)
        ranked = sorted(sessions, key=lambda s: s.cost_micros, reverse=True)[:TOP]
        return [
            {
                "session": s.id,
                "agent": self._agent_name(s.agent_id),
                "cost_usd": s.cost_micros / 1e6,
                "state": s.state.value,
            }
            for s in ranked
        ]


def _payload(
    budget: Budget,
    usage: PeriodUsage,
    identity: AgentIdentity,
    threshold: int,
    percent: float,
    top_sessions: list[dict[str, Any]],
    top_agents: list[dict[str, Any]],
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
        "top_agents": top_agents,
    }
