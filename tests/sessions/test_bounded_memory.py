"""A day of sessions must not grow the server without end: every per-session structure in
memory is bounded, least recently used forgotten, and forgetting never loses what the
store keeps (a kill, a pause, a spent budget). Driven through the real HTTP door with the
bound set small (``TETHER_SESSIONS_IN_MEMORY``), so a few calls push a session out."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from tests.guards.test_guards import QUIET
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply
from tether.guards.watches import SessionWatches
from tether.sessions.conversations import LocalConversations

KEPT = 4
SMALL = pytest.mark.parametrize(
    "gateway", [{"sessions_in_memory": KEPT}], indirect=True, ids=[f"{KEPT}-in-memory"]
)
MODEL = "claude-sonnet-5"


def call(
    tether: RunningTether,
    key: str,
    session: str | None,
    text: str = "run the tests",
    max_tokens: int = 50,
) -> httpx.Response:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if session is not None:
        headers["X-Claude-Code-Session-Id"] = session
    return httpx.post(
        f"{tether.url}/v1/messages",
        json={
            "model": MODEL,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        },
        headers=headers,
        timeout=30,
    )


def push_out(tether: RunningTether, key: str, tag: str, count: int = 3 * KEPT) -> None:
    """``count`` new sessions, each with one call: more than the bound holds."""
    for n in range(count):
        answer = call(tether, key, f"{tag}-filler-{n}", f"filler {n}")
        assert answer.status_code == 200, answer.text


def in_memory(tether: RunningTether) -> dict[str, float]:
    text = httpx.get(
        f"{tether.url}/metrics",
        headers={"Authorization": f"Bearer {tether.admin_token}"},
        timeout=30,
    ).text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^tether_in_memory_entries\{structure="(\w+)"\} (\S+)$', text, re.M)
    }


def assert_bounded(tether: RunningTether) -> None:
    sizes = in_memory(tether)
    assert sizes["sessions_cached"] <= KEPT
    assert sizes["conversations"] <= KEPT
    assert sizes["guard_sessions"] <= KEPT // 2


@SMALL
def test_a_killed_session_pushed_out_of_memory_is_still_refused(gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    assert call(gateway, key, "victim").status_code == 200
    killed = gateway.call("POST", "/sessions/victim/kill", json={"reason": "runaway"})
    assert killed.status_code == 200, killed.text
    assert call(gateway, key, "victim").status_code == 423
    push_out(gateway, key, "kill")
    assert_bounded(gateway)
    refused = call(gateway, key, "victim")
    assert refused.status_code == 423
    assert "victim was terminated" in refused.json()["error"]["message"]
    assert gateway.call("GET", "/sessions/victim").json()["state"] == "terminated"


@SMALL
def test_a_paused_session_pushed_out_of_memory_stays_paused_until_resumed(
    gateway: RunningTether,
) -> None:
    key = gateway.create_agent("a", "p")
    gateway.set_guards("p", **{**QUIET, "repeat_limit": 2, "on_trip": "pause"})
    statuses = [call(gateway, key, "looping").status_code for _ in range(3)]
    assert statuses == [200, 200, 423]
    assert gateway.call("GET", "/sessions/looping").json()["state"] == "paused"
    push_out(gateway, key, "pause")
    assert_bounded(gateway)
    still = call(gateway, key, "looping", "something new")
    assert still.status_code == 423
    assert gateway.call("GET", "/sessions/looping").json()["state"] == "paused"
    resumed = gateway.call("POST", "/sessions/looping/resume", json={"reason": "looked at it"})
    assert resumed.status_code == 200, resumed.text
    assert call(gateway, key, "looping", "something newer").status_code == 200


@SMALL
def test_a_session_out_of_budget_pushed_out_of_memory_is_still_refused(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    gateway.set_guards("p", **QUIET)
    limit = gateway.call(
        "PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.25}
    )
    assert limit.status_code == 200, limit.text
    upstream.fake.default = FakeReply(output_tokens=5000)
    statuses = [call(gateway, key, "greedy", max_tokens=6000).status_code for _ in range(10)]
    assert 200 in statuses and statuses[-1] == 402
    upstream.fake.default = FakeReply(output_tokens=5)
    push_out(gateway, key, "budget")
    assert_bounded(gateway)
    refused = call(gateway, key, "greedy")
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] in {"session_budget_exhausted", "budget_exceeded"}


@SMALL
def test_a_live_session_keeps_its_guard_memory_while_others_come_and_go(
    gateway: RunningTether,
) -> None:
    """The live session is used between each newcomer, so it is never the least recently
    used; one pushed out by many newcomers starts its guards afresh (the bound is real)."""
    key = gateway.create_agent("a", "p")
    gateway.set_guards("p", **{**QUIET, "repeat_limit": 3})
    for n in range(3):
        assert call(gateway, key, "live").status_code == 200
        assert call(gateway, key, f"passing-{n}", f"passing {n}").status_code == 200
    refused = call(gateway, key, "live")
    assert refused.status_code == 423
    assert refused.json()["error"]["code"] == "repeated_call"

    for _ in range(3):
        assert call(gateway, key, "idle").status_code == 200
    push_out(gateway, key, "guards")
    assert call(gateway, key, "idle").status_code == 200
    assert_bounded(gateway)


@SMALL
def test_clients_without_a_session_header_are_bounded_too(gateway: RunningTether) -> None:
    key = gateway.create_agent("sdk", "p")
    for n in range(3 * KEPT):
        answer = call(gateway, key, None, f"conversation {n}")
        assert answer.status_code == 200, answer.text
    assert_bounded(gateway)
    sessions = gateway.call("GET", "/sessions", params={"agent": "sdk", "limit": "100"}).json()
    assert len(sessions) == 3 * KEPT


def test_the_conversation_index_forgets_the_least_recently_used() -> None:
    async def run() -> None:
        index = LocalConversations(remembered=3)
        first = await index.session_of("agent", "first")
        for n in range(10):
            assert await index.session_of("agent", "first") == first
            await index.session_of("agent", f"other {n}")
            await index.note_latest(f"agent {n}", f"s{n}")
        assert index.sizes() == {"conversations": 3, "latest_by_agent": 3}
        assert await index.latest("agent 9") == "s9"
        assert await index.latest("agent 0") is None
        assert await index.session_of("agent", "other 0") not in {first, ""}

    asyncio.run(run())


def test_guard_watches_keep_the_recently_used_and_forget_the_rest() -> None:
    watches = SessionWatches(kept=2)
    now = int(time.time() * 1000)
    watches.of("live", now).occurrences(7, now, 300_000, 10)
    for n in range(20):
        watches.of(f"newcomer {n}", now)
        watches.of("live", now)
    assert len(watches) == 2
    live = watches.get("live")
    assert live is not None and live.recent
    assert watches.get("newcomer 0") is None
