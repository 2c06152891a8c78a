"""Budget definitions as the hot path sees them: in memory, refreshed by the change feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether.budgets.definitions import Budget, BudgetScope
from tether.errors import TetherError
from tether.store.budgets import BudgetStore
from tether.store.changes import Change
from tether.store.clock import now_ms

__all__ = ["BudgetBook"]

log = logging.getLogger(__name__)

REAP_SECONDS = 30.0


class BudgetBook:
    def __init__(self, store: BudgetStore) -> None:
        self._store = store
        self._by_project: dict[str, list[Budget]] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def load(self) -> None:
        by_project: dict[str, list[Budget]] = {}
        for budget in sorted(await self._store.all(), key=lambda budget: budget.id):
            by_project.setdefault(budget.project_id, []).append(budget)
        self._by_project = by_project

    async def apply(self, change: Change) -> None:
        if change.kind == "budget":
            await self.load()

    def applicable(self, project_id: str, agent_id: str) -> list[Budget]:
        """Every budget a call of this agent counts against; all must allow it. Always in
        budget-id order: the ledger locks their rows in this order on every replica."""
        return [
            budget
            for budget in self._by_project.get(project_id, ())
            if budget.scope is not BudgetScope.AGENT or budget.agent_id == agent_id
        ]

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever(), name="budget-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper

    async def _reap_forever(self) -> None:
        """Reservations of requests that never settled (a crash) go back to the budget."""
        while True:
            await asyncio.sleep(REAP_SECONDS)
            try:
                released = await self._store.release_expired(now_ms())
            except TetherError as exc:
                log.warning("expired budget reservations not released yet: %s", exc.message)
            else:
                if released:
                    log.warning("released %d expired budget reservations", released)
