"""The guards' memory shared in Redis: two tethers on one PostgreSQL database and one
Redis, a session's requests alternating between them, trip at the same call as one tether
does; with Redis unreachable, guarded calls are refused (fail closed)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx

from tests.guards.test_guards import QUIET, Sdk, ToolLoop, ask, refusal
from tests.support.databases import sqlite_url
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, free_port, start_tether
from tests.support.tcp_proxy import CuttableProxy
from tether.errors import REDIS_TIMEOUT_SECONDS
from tether.fakes.anthropic import FakeReply


def alternate(
    fleet: tuple[RunningTether, RunningTether], sdk: Sdk, key: str, session: str
) -> list[anthropic.Anthropic]:
    return [sdk(tether, key, session) for tether in fleet]


def test_the_repeat_guard_trips_at_the_same_call_on_two_processes_as_on_one(
    redis_fleet: tuple[RunningTether, RunningTether], sdk: Sdk
) -> None:
    first, _ = redis_fleet
    key = first.create_agent("looper", "p")
    first.set_guards("p", **{**QUIET, "repeat_limit": 3})
    tripped_at = {}
    for name, clients in {
        "one": [sdk(first, key, "on-one")],
        "two": alternate(redis_fleet, sdk, key, "on-two"),
    }.items():
        for call in range(1, 10):
            agent = clients[call % len(clients)]
            try:
                ask(agent)
            except anthropic.APIStatusError as exc:
                assert exc.body["error"]["code"] == "repeated_call"  # type: ignore[index]
                tripped_at[name] = call
                break
    assert tripped_at == {"one": 4, "two": 4}


def test_a_script_naming_no_session_is_one_session_on_two_processes(
    redis_fleet: tuple[RunningTether, RunningTether], sdk: Sdk
) -> None:
    """A raw-API script sends no session header: its conversation is its session on every
    process, so its loop trips where it would on one."""
    first, second = redis_fleet
    key = first.create_agent("script", "p")
    first.set_guards("p", **{**QUIET, "repeat_limit": 3})
    clients = [sdk(first, key), sdk(second, key)]
    sessions = set()
    for call in range(1, 10):
        agent = clients[call % 2]
        try:
            raw = agent.messages.with_raw_response.create(
                model="claude-sonnet-5",
                max_tokens=100,
                messages=[{"role": "user", "content": "run the tests"}],
            )
            sessions.add(raw.headers["tether-session-id"])
        except anthropic.APIStatusError as exc:
            assert exc.body["error"]["code"] == "repeated_call"  # type: ignore[index]
            assert exc.response.headers["tether-session-id"] in sessions
            break
    assert call == 4, f"tripped at call {call}"
    assert len(sessions) == 1, sessions


def _burst(
    fleet: tuple[RunningTether, RunningTether], key: str, session: str, texts: list[str]
) -> list[httpx.Response]:
    """All at once, alternating between the two processes: the parallel calls of one
    Claude Code session (its subagents, its side calls) as a fleet receives them."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(texts))
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{fleet[n % 2].url}/v1/messages",
                        headers={
                            "x-api-key": key,
                            "anthropic-version": "2023-06-01",
                            "X-Tether-Session-Id": session,
                        },
                        json={
                            "model": "claude-sonnet-5",
                            "max_tokens": 100,
                            "messages": [{"role": "user", "content": text}],
                        },
                    )
                    for n, text in enumerate(texts)
                )
            )

    return asyncio.run(run())


def test_a_burst_in_one_session_over_two_processes_is_judged_call_by_call(
    redis_fleet: tuple[RunningTether, RunningTether],
) -> None:
    """Forty calls of one session at once, half on each process, the circuit breaker on:
    every one is judged against the others (none refused because the shared state was
    busy), a loop among them trips after exactly the limit, and each call gets its own
    verdict (the distinct calls mixed in are all answered)."""
    first, _ = redis_fleet
    key = first.create_agent("burst", "p")
    first.set_guards("p", **{**QUIET, "repeat_limit": 3, "breaker_failures": 5})
    distinct = _burst(redis_fleet, key, "burst", [f"step {n}" for n in range(40)])
    assert Counter(r.status_code for r in distinct) == {200: 40}, [
        r.text for r in distinct if r.status_code != 200
    ][:2]
    texts = ["run the tests" if n % 2 else f"look {n}" for n in range(40)]
    mixed = _burst(redis_fleet, key, "burst", texts)
    outcomes = Counter(
        (text == "run the tests", r.status_code == 200 or r.json()["error"].get("code"))
        for text, r in zip(texts, mixed, strict=True)
    )
    assert outcomes == {(False, True): 20, (True, True): 3, (True, "repeated_call"): 17}, outcomes


def test_a_tool_loop_spread_over_two_processes_is_withheld_at_the_same_call(
    redis_fleet: tuple[RunningTether, RunningTether], upstream: RunningFake, sdk: Sdk
) -> None:
    first, _ = redis_fleet
    key = first.create_agent("deployer", "p")
    first.set_guards("p", **{**QUIET, "tool_repeat_limit": 2})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "make deploy"})
    clients = alternate(redis_fleet, sdk, key, "tool-loop")
    agent = ToolLoop(clients[0])
    agent.turn()
    agent.client = clients[1]
    agent.turn(answer="make: *** [deploy] Error 2")
    agent.client = clients[0]
    error = refusal(lambda: agent.turn(answer="make: *** [deploy] Error 2"))
    assert error.body["error"]["code"] == "repeated_tool_call"
    assert agent.executions == 2, "the third identical call was never handed to the agent"
    agent.client = clients[1]
    retried = refusal(lambda: agent.turn(answer="make: *** [deploy] Error 2"))
    assert retried.body["error"]["code"] == "repeated_tool_call", "the other process knows"


def test_with_redis_unreachable_guarded_calls_are_refused_and_readiness_says_why(
    tmp_path: Path, upstream: RunningFake, sdk: Sdk
) -> None:
    tether = start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        anthropic_base_url=upstream.url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    try:
        tether.create_project("p", upstream.fake.api_key)
        key = tether.create_agent("agent", "p")
        error = refusal(lambda: ask(sdk(tether, key, "s-1")))
        assert error.status_code == 503
        assert error.body["error"]["code"] == "guard_state_unavailable"  # type: ignore[index]
        unnamed = refusal(lambda: ask(sdk(tether, key)))
        assert unnamed.status_code == 503, "a caller naming no session cannot be placed either"
        assert "Redis" in unnamed.body["error"]["message"]  # type: ignore[index]
        assert len(upstream.fake.received) == 0, "nothing reached upstream unguarded"
        ready = httpx.get(f"{tether.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["guards"] != "ok"
    finally:
        tether.stop()


def _trips_at(agent: anthropic.Anthropic, fault_at: int, fault: Callable[[], None]) -> int:
    for call in range(1, 10):
        if call == fault_at:
            fault()
        try:
            ask(agent)
        except anthropic.APIStatusError as exc:
            assert exc.body["error"]["code"] == "repeated_call", exc.body  # type: ignore[index]
            return call
    raise AssertionError("the loop was never stopped")


def test_a_guard_commit_whose_reply_was_lost_is_sent_again_and_counted_once(
    tether_behind_redis_proxy: RunningTether, redis_proxy: CuttableProxy, sdk: Sdk
) -> None:
    """The commit reached Redis, its reply did not (the connection dropped): the call is
    answered, not refused, and counted once, so the loop trips where it would have."""
    key = tether_behind_redis_proxy.create_agent("looper", "p")
    tether_behind_redis_proxy.set_guards("p", **{**QUIET, "repeat_limit": 3})
    agent = sdk(tether_behind_redis_proxy, key, "lost-reply")
    assert _trips_at(agent, 2, lambda: redis_proxy.lose_reply_to(b"guards:w")) == 4


def test_a_guard_reply_held_past_the_timeout_is_asked_for_again(
    tether_behind_redis_proxy: RunningTether, redis_proxy: CuttableProxy, sdk: Sdk
) -> None:
    """A reply late past the timeout (as when the event loop stalls, the reply unread in the
    socket) is asked for again on a fresh connection, not turned into a refusal."""
    key = tether_behind_redis_proxy.create_agent("looper", "p")
    tether_behind_redis_proxy.set_guards("p", **{**QUIET, "repeat_limit": 3})
    agent = sdk(tether_behind_redis_proxy, key, "late-reply")
    assert (
        _trips_at(
            agent, 3, lambda: redis_proxy.hold_reply_to(b"guards:w", REDIS_TIMEOUT_SECONDS + 0.5)
        )
        == 4
    )
