"""Reservations left unsettled because their call never settled (its process died): each
one is an audit event in its project, so what stays reserved is visible and explained."""

from __future__ import annotations

import logging

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.budgets.book import BudgetBook
from tether.errors import TetherError
from tether.store.budgets import ExpiredHold

__all__ = ["RecordUnsettled"]

log = logging.getLogger(__name__)


class RecordUnsettled:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self.book: BudgetBook | None = None

    async def __call__(self, marked: list[ExpiredHold]) -> None:
        log.warning(
            "%d budget reservations were never settled (a process died?); they stay "
            "reserved, not spent, until settled ('tether budgets settle')",
            len(marked),
        )
        events = []
        for hold in marked:
            budget = self.book.find(hold.budget_id) if self.book is not None else None
            events.append(
                AuditEvent(
                    actor="tether:budget",
                    source="budgets",
                    action="budget:unsettled",
                    resource=f"reservation:{hold.reservation_id}",
                    result="unsettled",
                    reason="the call never settled (its process died, or the store was out "
                    "longer than the hold); what it reserved stays reserved, not spent, until "
                    "upstream's usage or an operator settles it",
                    project_id=budget.project_id if budget else None,
                    attributes={
                        "budget_id": hold.budget_id,
                        "period": hold.period_key,
                        "reserved_usd": hold.micros / 1_000_000,
                        "reserved_tokens": hold.tokens,
                    },
                )
            )
        try:
            await self._audit.record_many(events, urgent=False)
        except TetherError as exc:
            log.error("%d unsettled reservations not recorded: %s", len(events), exc.message)
