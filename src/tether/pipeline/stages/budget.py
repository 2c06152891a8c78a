"""Stage 5: budgets. Reserves the worst-case cost in every applicable budget before the
call, refuses if any cannot hold it, and settles to the real cost afterwards."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from tether.alerts.crossings import BudgetAlerts
from tether.budgets.book import BudgetBook
from tether.budgets.definitions import BudgetScope, period_window
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.pipeline.outcome import Outcome
from tether.pricing.prices import PriceTable
from tether.sessions.registry import SessionRegistry
from tether.store.budget_ledger import BudgetLedger
from tether.store.budgets import BudgetStore, Hold, PeriodUsage
from tether.store.clock import new_id, now_ms
from tether.store.records import SessionState

__all__ = ["BudgetReservation", "ReserveBudget"]

BUDGET_ACTOR = "tether:budget"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BudgetReservation:
    id: str
    holds: list[Hold]
    worst_case_micros: int


def _usd(micros: int) -> str:
    value = micros / 1_000_000
    return f"${value:.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


class ReserveBudget:
    def __init__(
        self,
        book: BudgetBook,
        store: BudgetStore,
        ledger: BudgetLedger,
        prices: PriceTable,
        sessions: SessionRegistry,
        alerts: BudgetAlerts,
        hold_ms: int,
    ) -> None:
        self._alerts = alerts
        self._book = book
        self._store = store
        self._ledger = ledger
        self._prices = prices
        self._sessions = sessions
        self._hold_ms = hold_ms

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        basis = action.cost_basis
        if basis is None or ctx.identity is None or ctx.session is None or ctx.preview:
            return None
        budgets = self._book.applicable(ctx.identity.project.id, ctx.identity.agent.id)
        if not budgets:
            return None
        price, _ = self._prices.price_for(basis.model)
        worst = math.ceil(
            basis.input_tokens_estimate * price.input + basis.max_output_tokens * price.output
        )
        tokens = basis.input_tokens_estimate + basis.max_output_tokens
        at = now_ms()
        holds = []
        for budget in budgets:
            window = period_window(budget.period, ctx.identity.project.timezone, ctx.session.id, at)
            holds.append(Hold(budget, window.key, window.end_ms, worst, tokens))
        reservation_id = new_id()
        refused = await self._ledger.reserve(reservation_id, holds, at + self._hold_ms)
        if refused is not None:
            denial = await self._refusal(refused, ctx)
            if refused.budget.scope is BudgetScope.SESSION:
                await self._sessions.set_state(
                    ctx.session.id, SessionState.BUDGET_EXHAUSTED, BUDGET_ACTOR, denial.reason
                )
            return denial
        ctx.reservation = BudgetReservation(reservation_id, holds, worst)
        return None

    async def _refusal(self, hold: Hold, ctx: Context) -> Deny:
        assert ctx.identity is not None
        usage = await self._store.usage(hold.budget.id, hold.period_key)
        spent = usage.spent_micros if usage else 0
        reserved = usage.reserved_micros if usage else 0
        name = hold.budget.describe(ctx.identity.project.name, ctx.identity.agent.name)
        limit = hold.budget.limit_micros
        if limit is not None and spent + reserved + hold.micros > limit:
            remaining = max(0, limit - spent - reserved)
            reason = (
                f"tether: the {name} is {_usd(limit)}; {_usd(remaining)} remains "
                f"(spent {_usd(spent)}, reserved by running calls {_usd(reserved)}) and this "
                f"call may cost up to {_usd(hold.micros)}"
            )
        else:
            reason = (
                f"tether: the {name} allows {hold.budget.limit_tokens} tokens; not enough remain"
            )
        evidence = {
            "budget_id": hold.budget.id,
            "period": hold.period_key,
            "limit_usd": limit / 1_000_000 if limit is not None else None,
            "spent_usd": spent / 1_000_000,
            "reserved_usd": reserved / 1_000_000,
            "requested_usd": hold.micros / 1_000_000,
        }
        log.info("budget stop for agent %s: %s", ctx.identity.agent.name, reason)
        return Deny("budget_exceeded", reason, evidence)

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        reservation = ctx.reservation
        if not isinstance(reservation, BudgetReservation):
            return
        micros = round((outcome.cost_usd or 0.0) * 1_000_000)
        tokens = outcome.usage.total_tokens if outcome.usage else 0
        usages = await self._ledger.settle(reservation.id, reservation.holds, micros, tokens)
        for hold, usage in zip(reservation.holds, usages, strict=True):
            assert ctx.identity is not None
            await self._alerts.check(hold.budget, usage, ctx.identity)
            if hold.budget.scope is BudgetScope.SESSION and _exhausted(hold, usage):
                assert ctx.session is not None
                await self._sessions.set_state(
                    ctx.session.id,
                    SessionState.BUDGET_EXHAUSTED,
                    BUDGET_ACTOR,
                    f"it spent {_usd(usage.spent_micros)} of its "
                    f"{_usd(hold.budget.limit_micros or 0)} limit",
                )


def _exhausted(hold: Hold, usage: PeriodUsage) -> bool:
    limit_m, limit_t = hold.budget.limit_micros, hold.budget.limit_tokens
    return (limit_m is not None and usage.spent_micros >= limit_m) or (
        limit_t is not None and usage.spent_tokens >= limit_t
    )
