"""A tool's answer is counted before the agent sees it and recorded exactly once, with its
call's outcome: every answer of a loop is in the trail, an answer tether cannot count is
withheld (fail closed), and a late or repeated settlement neither loses nor doubles one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.mcp_servers.client import mcp_session, text_of
from tests.gateway.mcp_servers.conftest import register
from tests.support.databases import sqlite_url
from tests.support.mcp_upstream import RunningMcpUpstream, start_mcp_upstream
from tests.support.server import RunningTether, start_tether
from tests.support.tcp_proxy import CuttableProxy
from tether.pipeline import Action, Outcome

PERMIT_ALL = "permit(principal, action, resource);\n"


def _url(tether: RunningTether) -> str:
    return f"{tether.url}/mcp/servers/wh"


def _trail(tether: RunningTether, action: str) -> list[dict[str, Any]]:
    answer = tether.call("GET", "/audit", params={"action": action, "limit": 500})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()
    return events


def _await_trail(tether: RunningTether, action: str, count: int) -> list[dict[str, Any]]:
    """Settlement runs after the answer is sent: wait (bounded) for its events."""
    deadline = time.monotonic() + 20
    while len(events := _trail(tether, action)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return events


def test_every_answer_of_a_loop_is_in_the_trail_once(
    tether: RunningTether, json_upstream: RunningMcpUpstream
) -> None:
    key = register(tether, json_upstream)

    async def scenario() -> list[bool]:
        async with mcp_session(_url(tether), key) as session:
            await session.list_tools()
            return [(await session.call_tool("echo", {"text": "same"})).is_error for _ in range(6)]

    assert asyncio.run(scenario()) == [False] * 5 + [True]
    answers = _await_trail(tether, "tool_result:mcp__wh__echo", 5)
    completions = _await_trail(tether, "mcp:echo:completed", 5)
    assert len(answers) == 5 and len({e["id"] for e in answers}) == 5
    assert len(completions) == 5
    assert all(e["result"] == "ok" for e in answers + completions)


@pytest.fixture
def json_upstream() -> Iterator[RunningMcpUpstream]:
    """The warehouse answering with plain JSON (the SSE relay is covered by the door's
    tests; what is recorded does not depend on it)."""
    running = start_mcp_upstream(json_response=True)
    yield running
    running.stop()


@pytest.fixture
def redis_proxy() -> Iterator[CuttableProxy]:
    proxy = CuttableProxy("127.0.0.1", 6379).start()
    yield proxy
    proxy.close()


def test_an_answer_tether_cannot_count_is_withheld(
    tmp_path: Path, json_upstream: RunningMcpUpstream, redis_proxy: CuttableProxy
) -> None:
    """Guard memory (Redis) goes away while the tool runs: the decision was taken, but
    the answer cannot be counted against the loop guard, so the agent does not get it."""
    tether = start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0",
    )
    try:

        @json_upstream.server.tool(name="outage")
        def outage(text: str) -> str:
            """Answer after the guard memory went away."""
            redis_proxy.cut()
            return f"secret answer {text}"

        key = register(tether, json_upstream)
        tether.apply_policy("p", PERMIT_ALL)

        async def scenario() -> tuple[bool, str]:
            async with mcp_session(_url(tether), key) as session:
                await session.list_tools()
                assert not (await session.call_tool("echo", {"text": "fine"})).is_error
                result = await session.call_tool("outage", {"text": "x"})
                return result.is_error, text_of(result)

        refused, text = asyncio.run(scenario())
        assert refused, text
        assert "secret answer" not in text
        assert "guard_state_unavailable" in text or "Redis" in text, text
    finally:
        redis_proxy.restore()
        tether.stop()


def test_an_observation_after_settlement_is_written_once_and_settling_twice_adds_none(
    tether: RunningTether,
) -> None:
    """The pipeline's contract, on the real runtime: observations held for a decision
    are written with its outcome; one that comes after is written on its own; a second
    settlement writes no observation again."""
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    pipeline = tether.runtime.pipeline

    def act(name: str) -> Action:
        return Action(
            source="test",
            credential=key,
            action=name,
            resource="mcp://wh/echo",
            session_id="held-1",
        )

    async def scenario() -> None:
        decision = await pipeline.decide(act("mcp:echo"))
        assert decision.allowed, decision.reason
        await pipeline.observe(act("tool_result:held"), "ok", "before", settled_with=decision)
        held = await tether.runtime.audit_store.query(action_prefix="tool_result:held")
        assert held == [], "held until the decision is settled"
        outcome = Outcome(result="ok", status=200, latency_ms=1.0)
        await pipeline.settle(decision, outcome)
        await pipeline.observe(act("tool_result:late"), "ok", "after", settled_with=decision)
        await pipeline.settle(decision, outcome)

    asyncio.run_coroutine_threadsafe(scenario(), tether._loop).result(30)
    assert len(_await_trail(tether, "tool_result:held", 1)) == 1
    assert len(_await_trail(tether, "tool_result:late", 1)) == 1
    time.sleep(1.0)
    assert len(_trail(tether, "tool_result:held")) == 1
    assert len(_trail(tether, "tool_result:late")) == 1
    assert len(_trail(tether, "mcp:echo:completed")) == 2
