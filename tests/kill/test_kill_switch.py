"""The kill switch: sessions, agents, projects, the fleet — new requests refused, running
streams cut within a second, nothing outside the scope touched."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.streams import MODEL, StreamRecord, read_stream
from tether.fakes.anthropic import FakeReply

SLOW = FakeReply(text="word " * 30, chunks=30, chunk_delay=0.1)


def ask(tether: RunningTether, key: str, session: str) -> anthropic.types.Message:
    with anthropic.Anthropic(
        base_url=tether.url,
        api_key=key,
        max_retries=2,
        default_headers={"X-Claude-Code-Session-Id": session},
    ) as client:
        return client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


async def run_streams_and(
    tether: RunningTether, streams: dict[str, tuple[str, str]], action
) -> tuple[dict[str, StreamRecord], float]:
    """Start one slow stream per name (key, session); once all are flowing, run ``action``
    in a thread; return the records and when the action returned."""
    async with httpx.AsyncClient(base_url=tether.url, timeout=30) as client:
        tasks = {
            name: asyncio.create_task(read_stream(client, key, session))
            for name, (key, session) in streams.items()
        }
        await asyncio.sleep(0.3)
        await asyncio.to_thread(action)
        acted_at = time.monotonic()
        records = {name: await task for name, task in tasks.items()}
    return records, acted_at


def test_terminating_a_session_cuts_its_stream_and_nothing_else(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    alice = gateway.create_agent("alice", "p")
    bob = gateway.create_agent("bob", "p")
    upstream.fake.enqueue(SLOW, SLOW, SLOW)

    def kill() -> None:
        response = gateway.call("POST", "/sessions/alice-1/kill", json={"reason": "runaway loop"})
        assert response.status_code == 200, response.text

    records, killed_at = asyncio.run(
        run_streams_and(
            gateway,
            {
                "target": (alice, "alice-1"),
                "same-agent": (alice, "alice-2"),
                "other": (bob, "bob-1"),
            },
            kill,
        )
    )

    target = records["target"]
    assert not target.completed
    assert target.error is not None
    assert target.error["error"]["type"] == "permission_error"
    assert "alice-1 was terminated by admin:bootstrap" in target.error["error"]["message"]
    assert "runaway loop" in target.error["error"]["message"]
    assert target.ended_at - killed_at < 1.0
    assert records["same-agent"].completed and records["same-agent"].error is None
    assert records["other"].completed and records["other"].error is None


def test_a_kill_while_upstream_is_still_thinking_cuts_the_stream_when_it_starts(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """The call was allowed, then its session killed before upstream sent a byte (a model's
    time to first token): the stream registered after the kill was applied, and no later
    change came to cut it."""
    alice = gateway.create_agent("alice", "p")
    upstream.fake.enqueue(FakeReply(text="word " * 30, chunks=30, chunk_delay=0.05, delay=1.5))

    def kill() -> None:
        response = gateway.call("POST", "/sessions/alice-late/kill", json={"reason": "too late"})
        assert response.status_code == 200, response.text

    records, _ = asyncio.run(run_streams_and(gateway, {"late": (alice, "alice-late")}, kill))

    late = records["late"]
    assert not late.completed
    assert late.error is not None, late.events
    assert "alice-late was terminated" in late.error["error"]["message"]
    assert not [e for e in late.events if e[0] == "content_block_delta"], "nothing relayed"


def test_a_tool_call_answered_after_its_session_was_killed_is_not_handed_over(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    alice = gateway.create_agent("alice", "p")
    upstream.fake.enqueue(FakeReply(kind="tool_use", tool_input={"command": "rm -rf /"}, delay=1.5))

    def call() -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/messages",
            json={"model": MODEL, "max_tokens": 50,
                  "messages": [{"role": "user", "content": "clean up"}]},
            headers={"x-api-key": alice, "anthropic-version": "2023-06-01",
                     "X-Claude-Code-Session-Id": "alice-tool"},
            timeout=30,
        )  # fmt: skip

    async def call_and_kill() -> httpx.Response:
        answer = asyncio.create_task(asyncio.to_thread(call))
        await asyncio.sleep(0.5)
        killed = await asyncio.to_thread(
            gateway.call, "POST", "/sessions/alice-tool/kill", json={"reason": "stop it"}
        )
        assert killed.status_code == 200, killed.text
        return await answer

    answer = asyncio.run(call_and_kill())
    assert answer.status_code == 423, answer.text
    assert "alice-tool was terminated" in answer.json()["error"]["message"]
    assert "rm -rf" not in answer.text


@pytest.mark.parametrize("gateway", [{"sessions_in_memory": 2}], indirect=True, ids=["2-held"])
def test_a_kill_cuts_a_stream_whose_session_left_the_cache_while_it_ran(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """A fleet opens sessions faster than a long stream runs: the stream's session is pushed
    out of the sessions held in memory (two here), and the kill switch reads only memory."""
    alice = gateway.create_agent("alice", "p")
    upstream.fake.enqueue(SLOW)

    def crowd_out_then_kill() -> None:
        for n in range(3):
            assert ask(gateway, alice, f"alice-other-{n}").type == "message"
        response = gateway.call("POST", "/sessions/alice-long/kill", json={"reason": "runaway"})
        assert response.status_code == 200, response.text

    records, killed_at = asyncio.run(
        run_streams_and(gateway, {"long": (alice, "alice-long")}, crowd_out_then_kill)
    )
    long = records["long"]
    assert not long.completed
    assert long.error is not None, long.events
    assert "alice-long was terminated" in long.error["error"]["message"]
    assert long.ended_at - killed_at < 1.0


def test_after_a_kill_the_retry_is_refused_once_and_not_retried(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    ask(gateway, key, "s1")
    gateway.call("POST", "/sessions/s1/kill")
    before = len(upstream.fake.received)

    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(gateway, key, "s1")

    assert caught.value.status_code == 423
    assert "terminated" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.fake.received) == before, "a refused request never reaches upstream"
    decisions = [
        e
        for e in gateway.call("GET", "/audit", params={"session": "s1"}).json()
        if e["action"] == "model:messages"
    ]
    assert [d["result"] for d in decisions] == ["allow", "deny"], "the SDK did not retry"
    assert ask(gateway, key, "s2").type == "message"


def test_stopping_an_agent_cuts_all_its_streams_and_refuses_new_sessions(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    target = gateway.create_agent("claude-deploy-01", "p")
    other = gateway.create_agent("claude-deploy-02", "p")
    upstream.fake.enqueue(SLOW, SLOW, SLOW)

    def stop() -> None:
        assert (
            gateway.call(
                "POST", "/agents/claude-deploy-01/stop", json={"reason": "spending too fast"}
            ).status_code
            == 200
        )

    records, stopped_at = asyncio.run(
        run_streams_and(
            gateway,
            {
                "t1": (target, "t-1"),
                "t2": (target, "t-2"),
                "other": (other, "o-1"),
            },
            stop,
        )
    )
    for name in ("t1", "t2"):
        assert records[name].error is not None, name
        assert "claude-deploy-01" in records[name].error["error"]["message"]
        assert records[name].ended_at - stopped_at < 1.0
    assert records["other"].completed

    with pytest.raises(anthropic.APIStatusError, match="was stopped by admin:bootstrap"):
        ask(gateway, target, "brand-new")
    assert ask(gateway, other, "o-2").type == "message"

    assert gateway.call("POST", "/agents/claude-deploy-01/release").json()["state"] == "active"
    assert ask(gateway, target, "t-1").type == "message"


def test_pausing_a_project_affects_only_that_project(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    gateway.create_project("other", upstream.fake.api_key)
    inside = gateway.create_agent("inside", "p")
    outside = gateway.create_agent("outside", "other")
    upstream.fake.enqueue(SLOW, SLOW)

    def pause() -> None:
        paused = gateway.call("POST", "/projects/p/pause", json={"reason": "incident 42"}).json()
        assert paused["paused"] is True and paused["paused_by"] == "admin:bootstrap"

    records, paused_at = asyncio.run(
        run_streams_and(
            gateway,
            {
                "inside": (inside, "in-1"),
                "outside": (outside, "out-1"),
            },
            pause,
        )
    )
    assert records["inside"].error is not None
    assert "project 'p' is paused" in records["inside"].error["error"]["message"]
    assert records["inside"].ended_at - paused_at < 1.0
    assert records["outside"].completed

    with pytest.raises(anthropic.APIStatusError, match="incident 42"):
        ask(gateway, inside, "in-2")
    assert ask(gateway, outside, "out-2").type == "message"
    assert gateway.call("POST", "/projects/p/resume").json()["paused"] is False
    assert ask(gateway, inside, "in-3").type == "message"


def test_pause_all_stops_everyone_until_resumed(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    first = gateway.create_agent("a1", "p")
    second = gateway.create_agent("a2", "p")
    upstream.fake.enqueue(SLOW)

    def pause_all() -> None:
        assert gateway.call("POST", "/pause", json={"reason": "upstream incident"}).json()["paused"]

    records, paused_at = asyncio.run(run_streams_and(gateway, {"s": (first, "f-1")}, pause_all))
    assert records["s"].error is not None
    assert records["s"].ended_at - paused_at < 1.0
    for key in (first, second):
        with pytest.raises(anthropic.APIStatusError, match="every agent is paused"):
            ask(gateway, key, f"new-{key[-4:]}")
    authorize = httpx.post(
        f"{gateway.url}/v1/authorize",
        json={"action": "x:Y", "resource": "r"},
        headers={"x-api-key": first},
    )
    assert authorize.status_code == 423 and authorize.json()["error"]["code"] == "fleet_paused"
    assert gateway.call("POST", "/resume").json()["paused"] is False
    assert ask(gateway, second, "after").type == "message"


def test_every_kill_is_audited_with_who_issued_it(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    ask(gateway, key, "s")
    ops = gateway.call("POST", "/tokens", json={"name": "oncall", "role": "admin"}).json()["secret"]
    with gateway.admin(token=ops) as client:
        client.post("/sessions/s/kill", json={"reason": "r1"})
        client.post("/agents/a/stop")
        client.post("/projects/p/pause")
        client.post("/pause")
        client.post("/resume")
    events = gateway.call("GET", "/audit", params={"action": "admin:"}).json()
    issued = {(e["actor"], e["action"]) for e in events}
    for action in ("sessions.kill", "agents.stop", "projects.pause", "fleet.pause", "fleet.resume"):
        assert ("admin:oncall", f"admin:{action}") in issued, action
    session = gateway.call("GET", "/sessions/s").json()
    assert session["state"] == "terminated" and session["state_by"] == "admin:oncall"
    assert session["state_reason"] == "r1"


def test_killing_an_unknown_session_is_404(gateway: RunningTether) -> None:
    response = gateway.call("POST", "/sessions/nope/kill")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]["message"]


def test_a_kill_is_audited_once_on_the_chain_and_a_refused_change_as_an_error(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    ask(gateway, key, "s")
    assert gateway.call("POST", "/sessions/s/kill", json={"reason": "r"}).status_code == 200
    assert gateway.call("POST", "/sessions/s/kill").status_code == 200
    assert gateway.call("POST", "/sessions/s/resume").status_code == 409
    kills = gateway.call("GET", "/audit", params={"action": "admin:sessions."}).json()
    results = sorted((e["action"], e["result"]) for e in kills)
    assert results == [
        ("admin:sessions.kill", "ok"),
        ("admin:sessions.kill", "ok"),
        ("admin:sessions.resume", "error"),
    ]
    assert gateway.call("GET", "/audit/verify").json()["intact"] is True
    with pytest.raises(anthropic.APIStatusError, match="session_terminated"):
        ask(gateway, key, "s")
