"""Meters model calls: prices the usage upstream reported (a cut answer by the rule in
``pricing.cut``, a message batch's requests at the batch discount) and adds it to the
session."""

from __future__ import annotations

from tether.clock import now_ms
from tether.pipeline.action import Action, Context, Verdict
from tether.pipeline.outcome import Outcome
from tether.pricing.cut import cut_answer_cost
from tether.pricing.prices import BATCH_PRICE_FACTOR, PriceTable
from tether.records.fleet import ActivityDelta
from tether.sessions.registry import SessionRegistry

__all__ = ["MeterUsage"]


class MeterUsage:
    def __init__(self, prices: PriceTable, sessions: SessionRegistry) -> None:
        self._prices = prices
        self._sessions = sessions

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        return None

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        usage = outcome.usage
        if usage is None or outcome.model is None:
            return
        price, known = self._prices.price_for(outcome.model)
        basis = action.cost_basis
        if outcome.part_usages:
            cost = 0.0
            for model, part in outcome.part_usages:
                part_price, part_known = self._prices.price_for(model)
                cost += part_price.cost_usd(part) * BATCH_PRICE_FACTOR
                known = known and part_known
        elif outcome.usage_final or basis is None:
            cost = price.cost_usd(usage)
        else:
            cost = cut_answer_cost(
                price,
                usage,
                input_estimate=basis.input_tokens_estimate,
                max_output_tokens=ctx.output_token_cap or basis.max_output_tokens,
                stream=basis.stream,
            )
        outcome.cost_usd = round(cost, 8)
        outcome.price_known = known
        if ctx.session is not None:
            self._sessions.note_usage(
                ctx.session,
                ActivityDelta(
                    last_activity_at=now_ms(),
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_creation_tokens=usage.cache_creation_input_tokens,
                    cache_read_tokens=usage.cache_read_input_tokens,
                    cost_micros=round(outcome.cost_usd * 1_000_000),
                ),
            )
