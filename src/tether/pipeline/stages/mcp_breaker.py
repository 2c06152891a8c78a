"""A circuit breaker per upstream MCP server, like the model door's: after a run of
failures (429/5xx, or the server unreachable) its calls fail fast, for the project's
breaker cool-down (``guards``: ``breaker_failures``, ``breaker_cooldown_seconds``),
instead of each waiting on a server that is down. Held in this process's memory."""

from __future__ import annotations

from tether.clock import now_ms
from tether.guards.breaker import CircuitBreakers
from tether.guards.settings import load_guard_settings
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.pipeline.outcome import Outcome
from tether.pipeline.stages.mcp_tools import SOURCE

__all__ = ["BreakMcpCircuits"]


def _server_of(action: Action, ctx: Context) -> str | None:
    server = action.attributes.get("mcp_server")
    if action.source != SOURCE or not isinstance(server, str) or ctx.identity is None:
        return None
    return f"{ctx.identity.project.id}/{server}"


class BreakMcpCircuits:
    def __init__(self) -> None:
        self._breakers = CircuitBreakers()

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        key = _server_of(action, ctx)
        if key is None or ctx.preview:
            return None
        assert ctx.identity is not None
        if load_guard_settings(ctx.identity.project.guards).breaker_failures is None:
            return None
        wait = self._breakers.of(key).wait_ms(now_ms())
        if wait is None:
            return None
        seconds = max(1, -(-wait // 1000))
        return Deny(
            "upstream_circuit_open",
            f"MCP server {action.attributes['mcp_server']} kept failing; its calls fail "
            f"fast for {seconds} s more",
            {"retry_after_seconds": seconds},
        )

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        key = _server_of(action, ctx)
        if key is None:
            return
        assert ctx.identity is not None
        settings = load_guard_settings(ctx.identity.project.guards)
        if settings.breaker_failures is None:
            return
        breaker = self._breakers.of(key)
        if outcome.upstream_overloaded:
            breaker.failed(
                now_ms(),
                settings.breaker_failures,
                settings.breaker_cooldown_seconds * 1000,
                settings.breaker_max_cooldown_seconds * 1000,
                int((outcome.retry_after_seconds or 0) * 1000),
            )
        elif outcome.result == "ok" or (outcome.result == "error" and outcome.status < 500):
            breaker.succeeded()
