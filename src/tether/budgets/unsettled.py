"""Reservations charged at their worst case because their call never settled: each one is
an audit event in its project, so the charge is visible and explained."""

from __future__ import annotations

import logging

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.budgets.book import BudgetBook
from tether.errors import TetherError
from tether.store.budgets import ExpiredHold

__all__ = ["RecordUnsettledCharges"]

log = logging.getLogger(__name__)


class RecordUnsettledCharges:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self.book: BudgetBook | None = None

    async def __call__(self, charged: list[ExpiredHold]) -> None:
        log.warning("charged %d unsettled budget reservations at their worst case", len(charged))
        events = []
        for hold in charged:
            budget = self.book.find(hold.budget_id) if self.book is not None else None
            events.append(
                AuditEvent(
                    actor="tether:budget",
                    source="budgets",
                    action="budget:unsettled_charged",
                    resource=f"reservation:{hold.reservation_id}",
                    result="charged",
                    reason="the call never settled (a crash or a long store outage); its "
                    "reserved worst case was charged",
                    project_id=budget.project_id if budget else None,
                    attributes={
                        "budget_id": hold.budget_id,
                        "period": hold.period_key,
                        "charged_usd": hold.micros / 1_000_000,
                        "charged_tokens": hold.tokens,
                    },
                )
            )
        try:
            await self._audit.record_many(events, urgent=False)
        except TetherError as exc:
            log.error("%d unsettled charges not recorded: %s", len(events), exc.message)
