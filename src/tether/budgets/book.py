"""Budget definitions as the hot path sees them: in memory, refreshed by the change feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tether.clock import now_ms
from tether.errors import TetherError
from tether.records.budgets import Budget, BudgetScope
from tether.store.budgets import BudgetStore, ExpiredHold
from tether.store.changes import Change

__all__ = ["BudgetBook"]

log = logging.getLogger(__name__)

REAP_SECONDS = 30.0
"""How often reservations past their hold are looked for (sooner when holds are short)."""


class BudgetBook:
    def __init__(
        self,
        store: BudgetStore,
        on_unsettled: Callable[[list[ExpiredHold]], Awaitable[None]] | None = None,
        reap_seconds: float = REAP_SECONDS,
    ) -> None:
        """``on_unsettled`` is told of reservations that became unsettled."""
        self._store = store
        self._on_unsettled = on_unsettled
        self._reap_seconds = reap_seconds
        self._by_project: dict[str, list[Budget]] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def load(self) -> None:
        by_project: dict[str, list[Budget]] = {}
        for budget in sorted(await self._store.all(), key=lambda budget: budget.id):
            by_project.setdefault(budget.project_id, []).append(budget)
        self._by_project = by_project

    def find(self, budget_id: str) -> Budget | None:
        return next(
            (b for budgets in self._by_project.values() for b in budgets if b.id == budget_id),
            None,
        )

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
        """Reservations of requests that never settled (a crash) become unsettled: still
        reserved, not spent (``BudgetStore.mark_unsettled``). Once at start, then regularly."""
        while True:
            try:
                marked = await self._store.mark_unsettled(now_ms())
            except TetherError as exc:
                log.warning("expired budget reservations not marked unsettled: %s", exc.message)
                marked = []
            if marked and self._on_unsettled is not None:
                await self._on_unsettled(marked)
            await asyncio.sleep(self._reap_seconds)
