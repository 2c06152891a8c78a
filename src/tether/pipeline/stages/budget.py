"""Stage 5: budgets. Reserves what a call may cost in every applicable budget before it,
refuses if any cannot hold it, covers streamed output as it comes, and settles to the real
cost afterwards.

The input is reserved at the highest price it could be billed at (a 1-hour cache write).
Output is not reserved at ``max_tokens`` up front — Claude Code asks for 128,000 tokens on
every call, which would make small session limits unusable — but, for a stream, one
increment at a time as it is generated: a stream the budget cannot cover further is ended.
A whole (non-streamed) answer is covered up front; when its ``max_tokens`` does not fit,
the call goes ahead with the ``max_tokens`` the budget can pay for, or is refused."""

from __future__ import annotations

import logging
import math

from tether.alerts.crossings import BudgetAlerts
from tether.budgets.book import BudgetBook
from tether.budgets.reservation import BudgetReservation
from tether.clock import new_id, now_ms
from tether.pipeline.action import Action, Context, CostBasis, Deny, Verdict
from tether.pipeline.outcome import Outcome
from tether.pricing.prices import PriceTable
from tether.records.budgets import (
    Budget,
    BudgetPeriod,
    BudgetScope,
    PeriodWindow,
    period_window,
)
from tether.records.fleet import SessionState
from tether.sessions.registry import SessionRegistry
from tether.store.budget_ledger import BudgetLedger, ReservationSettled
from tether.store.budgets import BudgetStore, Hold, PeriodUsage

__all__ = ["ReserveBudget"]

BUDGET_ACTOR = "tether:budget"
OUTPUT_INCREMENT_TOKENS = 2048
"""A stream's output is covered this many tokens at a time: the most a stream can
overshoot its budget by (about $0.10 at $50 per million output tokens)."""
BATCH_HOLD_MS = 30 * 60 * 60 * 1000
"""A message batch runs up to 24 hours upstream (and its results are read later): its
reservation is held this long before it counts as never settled."""
MIN_CAPPED_OUTPUT_TOKENS = 256
"""A whole answer the budget could pay for fewer output tokens than this is refused."""

log = logging.getLogger(__name__)


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
        if basis.parts:
            return await self._reserve_batch(budgets, action, ctx)
        price, _ = self._prices.price_for(basis.model)
        input_price = max(price.input, price.cache_write_5m, price.cache_write_1h)
        reservation = BudgetReservation(
            new_id(), [], math.ceil(basis.input_tokens_estimate * input_price), price.output
        )
        output = basis.max_output_tokens
        if basis.stream:
            output = min(output, OUTPUT_INCREMENT_TOKENS)
        refused = await self._reserve(reservation, budgets, action, ctx, output)
        if refused is not None and not basis.stream:
            affordable = await self._affordable_output(
                reservation, budgets, basis.input_tokens_estimate, ctx
            )
            if affordable >= MIN_CAPPED_OUTPUT_TOKENS and affordable > basis.thinking_budget:
                output = affordable
                refused = await self._reserve(reservation, budgets, action, ctx, output)
                ctx.output_token_cap = output if refused is None else None
        if refused is not None:
            return await self._refuse(refused, ctx)
        ctx.reservation = reservation
        if basis.stream and output < basis.max_output_tokens:
            ctx.output_covered = output
        return None

    async def _reserve_batch(
        self, budgets: list[Budget], action: Action, ctx: Context
    ) -> Verdict | None:
        """A message batch: every request at its worst case, all or nothing. Nothing is
        capped (upstream would still answer each request in full)."""
        assert action.cost_basis is not None
        micros = sum(self._worst_case_micros(part) for part in action.cost_basis.parts)
        reservation = BudgetReservation(new_id(), [], micros, 0.0)
        refused = await self._reserve(reservation, budgets, action, ctx, 0)
        if refused is not None:
            return await self._refuse(refused, ctx)
        ctx.reservation = reservation
        return None

    def _worst_case_micros(self, basis: CostBasis) -> int:
        price, _ = self._prices.price_for(basis.model)
        input_price = max(price.input, price.cache_write_5m, price.cache_write_1h)
        return math.ceil(basis.input_tokens_estimate * input_price) + math.ceil(
            basis.max_output_tokens * price.output
        )

    async def _reserve(
        self,
        reservation: BudgetReservation,
        budgets: list[Budget],
        action: Action,
        ctx: Context,
        output: int,
    ) -> Hold | None:
        assert action.cost_basis is not None and ctx.identity is not None
        assert ctx.session is not None
        micros = reservation.input_micros + math.ceil(output * reservation.output_price)
        tokens = action.cost_basis.input_tokens_estimate + output
        at = now_ms()
        new_session = self._sessions.unwritten(ctx.session.id) is not None
        holds = [
            Hold(
                budget,
                window.key,
                window.end_ms,
                micros,
                tokens,
                fresh=new_session and budget.period is BudgetPeriod.SESSION,
            )
            for budget, window in _windows(budgets, ctx, at)
        ]
        hold_ms = BATCH_HOLD_MS if action.cost_basis.parts else self._hold_ms
        refused = await self._ledger.reserve(reservation.id, holds, at + hold_ms)
        if refused is None:
            reservation.holds = holds
            ctx.unwritten.extend(self._ledger.unwritten(reservation.id))
        return refused

    async def _affordable_output(
        self,
        reservation: BudgetReservation,
        budgets: list[Budget],
        input_tokens: int,
        ctx: Context,
    ) -> int:
        """The most output tokens every budget could still pay for after the input."""
        assert ctx.identity is not None and ctx.session is not None
        affordable: int | None = None
        for budget, window in _windows(budgets, ctx, now_ms()):
            usage = await self._store.usage(budget.id, window.key)
            spent_m = (usage.spent_micros + usage.reserved_micros) if usage else 0
            spent_t = (usage.spent_tokens + usage.reserved_tokens) if usage else 0
            if budget.limit_micros is not None:
                left = budget.limit_micros - spent_m - reservation.input_micros
                fits = int(left // reservation.output_price) if reservation.output_price else left
                affordable = fits if affordable is None else min(affordable, fits)
            if budget.limit_tokens is not None:
                fits = budget.limit_tokens - spent_t - input_tokens
                affordable = fits if affordable is None else min(affordable, fits)
        return max(0, affordable or 0)

    async def cover_output(self, action: Action, ctx: Context, tokens: int) -> Deny | None:
        """Cover a stream's output up to ``tokens`` before it goes further, an increment
        at a time; refused when a budget cannot hold the next increment."""
        reservation = ctx.reservation
        basis = action.cost_basis
        covered = ctx.output_covered
        if not isinstance(reservation, BudgetReservation) or basis is None or covered is None:
            return None
        ceiling = basis.max_output_tokens
        step = min(max(OUTPUT_INCREMENT_TOKENS, tokens - covered), ceiling - covered)
        if step <= 0:
            ctx.output_covered = None
            return None
        micros = math.ceil(step * reservation.output_price)
        holds = [
            Hold(h.budget, h.period_key, h.period_end, micros, step) for h in reservation.holds
        ]
        try:
            refused = await self._ledger.extend(reservation.id, holds, now_ms() + self._hold_ms)
        except ReservationSettled:
            return _settled_while_streaming(reservation, tokens)
        if refused is not None:
            denial = await self._refuse(refused, ctx, stopped_after=tokens)
            return denial
        ctx.output_covered = covered + step
        if ctx.output_covered >= ceiling:
            ctx.output_covered = None
        return None

    async def _refuse(self, hold: Hold, ctx: Context, stopped_after: int | None = None) -> Deny:
        assert ctx.session is not None
        denial = await self._refusal(hold, ctx, stopped_after)
        if hold.budget.scope is BudgetScope.SESSION:
            await self._sessions.set_state(
                ctx.session.id, SessionState.BUDGET_EXHAUSTED, BUDGET_ACTOR, denial.reason
            )
        return denial

    async def _refusal(self, hold: Hold, ctx: Context, stopped_after: int | None) -> Deny:
        assert ctx.identity is not None
        usage = await self._store.usage(hold.budget.id, hold.period_key)
        spent = usage.spent_micros if usage else 0
        reserved = usage.reserved_micros if usage else 0
        name = hold.budget.describe(ctx.identity.project.name, ctx.identity.agent.name)
        limit = hold.budget.limit_micros
        if limit is not None and spent + reserved + hold.micros > limit:
            remaining = max(0, limit - spent - reserved)
            what = (
                "this call may cost up to"
                if stopped_after is None
                else f"the answer was stopped after about {stopped_after} output tokens; "
                "its next part may cost"
            )
            reason = (
                f"tether: the {name} is {_usd(limit)}; {_usd(remaining)} remains "
                f"(spent {_usd(spent)}, reserved {_usd(reserved)} by running calls and leases) "
                f"and {what} {_usd(hold.micros)}"
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
        charged = {usage.budget_id: usage for usage in usages}
        for hold in reservation.holds:
            usage = charged.get(hold.budget.id)
            if usage is None:
                continue
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


def _windows(budgets: list[Budget], ctx: Context, at: int) -> list[tuple[Budget, PeriodWindow]]:
    """Each budget with the period it is charged in now."""
    assert ctx.identity is not None and ctx.session is not None
    zone = ctx.identity.project.timezone
    return [(b, period_window(b.period, zone, ctx.session.id, at)) for b in budgets]


def _exhausted(hold: Hold, usage: PeriodUsage) -> bool:
    limit_m, limit_t = hold.budget.limit_micros, hold.budget.limit_tokens
    return (limit_m is not None and usage.spent_micros >= limit_m) or (
        limit_t is not None and usage.spent_tokens >= limit_t
    )


def _settled_while_streaming(reservation: BudgetReservation, tokens: int) -> Deny:
    """An operator settled the call's reservation (it looked unsettled) while its answer
    streamed: what comes next could not be held against any budget, so the answer stops."""
    return Deny(
        "budget_reservation_settled",
        f"tether: this call's budget reservation was settled by an operator while the answer "
        f"streamed; the answer was stopped after about {tokens} output tokens",
        {"reservation_id": reservation.id},
    )
