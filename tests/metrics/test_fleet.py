"""The fleet gauges on ``/metrics`` (budget levels, sessions by state, approvals waiting,
webhook deliveries failing) and guard trips, after real traffic."""

from __future__ import annotations

import time
from collections.abc import Callable

import anthropic
import httpx
import pytest

from tests.metrics.test_metrics import scrape, value
from tests.support.server import RunningTether

QUIET = {
    "repeat_limit": 2,
    "tool_repeat_limit": None,
    "max_retries": None,
    "stall_calls": None,
    "stall_minutes": None,
    "breaker_failures": None,
}


def ask(agent: anthropic.Anthropic) -> None:
    agent.messages.create(
        model="claude-sonnet-5", max_tokens=16, messages=[{"role": "user", "content": "again"}]
    )


def test_budgets_sessions_approvals_and_guard_trips_are_gauged_by_project_name(
    gateway: RunningTether, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    budget = gateway.call(
        "PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 10}
    )
    assert budget.status_code in (200, 201), budget.text
    budget_id = budget.json()["id"]
    key = gateway.create_agent("a", "p")
    gateway.set_guards("p", **QUIET)
    agent = sdk(gateway, key, "looping")
    ask(agent)
    ask(agent)
    with pytest.raises(anthropic.APIStatusError):
        ask(agent)
    pending = httpx.post(
        f"{gateway.url}/v1/authorize",
        json={"session_id": "s", "action": "s3:DeleteBucket", "resource": "arn:aws:s3:::prod"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert pending.status_code == 202, pending.text

    deadline = time.monotonic() + 5
    while True:
        samples = scrape(gateway)
        levels = {
            name: v
            for (name, labels), v in samples.items()
            if name.startswith("tether_budget_") and ("budget", budget_id) in labels
        }
        settled = levels.get("tether_budget_reserved_usd") == 0
        if (settled and levels["tether_budget_spent_usd"] > 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert levels["tether_budget_limit_usd"] == 10
    assert 0 < levels["tether_budget_spent_usd"] < 10
    assert levels["tether_budget_reserved_usd"] == 0
    assert value(samples, "tether_guard_trips_total", guard="repeated_call", project="p") == 1
    assert value(samples, "tether_approvals_pending", project="p") == 1
    sessions = {
        dict(labels)["state"]: v
        for (name, labels), v in samples.items()
        if name == "tether_sessions" and ("project", "p") in labels
    }
    assert sum(sessions.values()) == 2
    assert value(samples, "tether_webhook_deliveries_failed", state="dead") == 0
    assert value(samples, "tether_webhook_deliveries_failed", state="retrying") == 0
