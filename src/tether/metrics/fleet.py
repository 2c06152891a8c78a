"""Gauges of the fleet's state read from the store: budget levels, sessions by state,
approvals waiting, webhook deliveries failing. ``refresh`` reads them once per scrape
(``/metrics`` awaits it); ``collect`` then reports what was read, so a scrape never
blocks the event loop on the database."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tether.clock import now_ms
from tether.store.fleet_state import BudgetLevel, FleetState

__all__ = ["FleetGauges"]

BUDGET_LABELS = ["budget", "project", "scope", "period"]


class FleetGauges(Collector):
    def __init__(self, state: FleetState) -> None:
        self._state = state
        self._budgets: list[BudgetLevel] = []
        self._sessions: dict[tuple[str, str], int] = {}
        self._approvals: dict[str, int] = {}
        self._webhooks: dict[str, int] = {"retrying": 0, "dead": 0}

    async def refresh(self) -> None:
        now = now_ms()
        self._budgets = await self._state.budget_levels(now)
        self._sessions = await self._state.sessions_by_state()
        self._approvals = await self._state.approvals_pending(now)
        self._webhooks = await self._state.webhook_failures()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily(
            "tether_budget_limit_usd", "Each budget's limit in USD", labels=BUDGET_LABELS
        )
        spent = GaugeMetricFamily(
            "tether_budget_spent_usd",
            "Spent in each budget's current period, in USD",
            labels=BUDGET_LABELS,
        )
        reserved = GaugeMetricFamily(
            "tether_budget_reserved_usd",
            "Held for calls in flight in each budget's current period, in USD",
            labels=BUDGET_LABELS,
        )
        for level in self._budgets:
            labels = [level.budget_id, level.project, level.scope, level.period]
            if level.limit_usd is not None:
                limit.add_metric(labels, level.limit_usd)
            spent.add_metric(labels, level.spent_usd)
            reserved.add_metric(labels, level.reserved_usd)
        sessions = GaugeMetricFamily(
            "tether_sessions", "Sessions by project and state", labels=["project", "state"]
        )
        for (project, state), count in sorted(self._sessions.items()):
            sessions.add_metric([project, state], count)
        approvals = GaugeMetricFamily(
            "tether_approvals_pending",
            "Approval requests waiting for a human, by project",
            labels=["project"],
        )
        for project, count in sorted(self._approvals.items()):
            approvals.add_metric([project], count)
        webhooks = GaugeMetricFamily(
            "tether_webhook_deliveries_failed",
            "Webhook deliveries whose last attempt failed (retrying) or that were given up (dead)",
            labels=["state"],
        )
        for state, count in sorted(self._webhooks.items()):
            webhooks.add_metric([state], count)
        yield from (limit, spent, reserved, sessions, approvals, webhooks)
