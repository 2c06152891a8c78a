"""The loop guards that count what tools answered: the same call giving the same answer,
a session that stops moving on, tool results no hook saw, callers that name no session.
Driven through the real front doors (the anthropic SDK, the hook endpoint), with the
guards' clock replaced where hours of calls are replayed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.guards.test_guards import QUIET, Sdk, ToolLoop, refusal
from tests.support.fake_upstream import RunningFake
from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply


class FakeClock:
    def __init__(self) -> None:
        self.ms = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock(gateway: RunningTether) -> FakeClock:
    fake = FakeClock()
    gateway.runtime.guards.clock = fake
    return fake


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def replay_incident(agent: ToolLoop, clock: FakeClock) -> tuple[int, anthropic.APIStatusError]:
    """73 identical failing calls over 19 minutes (one every 15.6 s); returns the call that
    was refused and its refusal."""
    agent.turn()
    for call in range(2, 74):
        clock.advance(19 * 60 / 73)
        try:
            agent.turn(answer="requests.exceptions.HTTPError: 503 Server Error: CRM unavailable")
        except anthropic.APIStatusError as refused:
            return call, refused
    raise AssertionError(f"73 identical calls went through ({agent.executions} executions)")


def test_the_classic_incident_is_stopped_by_its_fifth_repeat_with_default_guards(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, clock: FakeClock
) -> None:
    key = gateway.create_agent("crm-sync", "p")
    upstream.fake.default = FakeReply(
        kind="tool_use", tool_name="Bash", tool_input={"command": "python sync.py --page 7"}
    )
    agent = ToolLoop(sdk(gateway, key, "incident"))
    call, refused = replay_incident(agent, clock)
    assert agent.executions == 5, "at most tool_repeat_limit (5) executions"
    assert call == 6
    assert refused.body["error"]["code"] == "repeated_tool_call"
    assert refused.status_code == 423
    events = gateway.call("GET", "/audit", params={"session": "incident"}).json()
    assert [e["code"] for e in events if e["action"] == "guard:repeated_tool_call"] == [
        "repeated_tool_call"
    ]


def test_a_script_that_names_no_session_is_stopped_the_same_way(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, clock: FakeClock
) -> None:
    key = gateway.create_agent("crm-script", "p")
    upstream.fake.default = FakeReply(
        kind="tool_use", tool_name="fetch_crm", tool_input={"page": 7}
    )
    agent = ToolLoop(sdk(gateway, key))
    call, refused = replay_incident(agent, clock)
    assert agent.executions == 5 and call == 6
    assert refused.body["error"]["code"] == "repeated_tool_call"
    calls = gateway.call(
        "GET", "/audit", params={"agent": "crm-script", "action": "model:messages"}
    ).json()
    assert len(calls) >= 6
    assert len({e["session_id"] for e in calls}) == 1, "one conversation, one session"
    other = ToolLoop(sdk(gateway, key))
    other.messages[0]["content"] = "a different task"
    other.turn()
    sessions = gateway.call(
        "GET", "/audit", params={"agent": "crm-script", "action": "model:messages"}
    ).json()
    assert len({e["session_id"] for e in sessions}) == 2, "another conversation, another session"


def test_a_session_that_keeps_calling_without_anything_new_trips_no_progress(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, clock: FakeClock
) -> None:
    key = gateway.create_agent("spinner", "p")
    gateway.set_guards("p", **{**QUIET, "stall_minutes": 10})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "kubectl get pods"})
    agent = ToolLoop(sdk(gateway, key, "spinning"))
    agent.turn()
    for _ in range(5):
        clock.advance(120)
        agent.turn(answer="pod/api-0 CrashLoopBackOff")
    clock.advance(121)
    error = refusal(lambda: agent.turn(answer="pod/api-0 CrashLoopBackOff"))
    assert error.status_code == 423 and error.body["error"]["code"] == "no_progress"
    assert "10 minutes without any new tool result" in error.body["error"]["message"]


def test_new_results_keep_a_long_session_going(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, clock: FakeClock
) -> None:
    key = gateway.create_agent("worker", "p")
    gateway.set_guards("p", **{**QUIET, "stall_minutes": 10})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "make test"})
    agent = ToolLoop(sdk(gateway, key, "working"))
    agent.turn()
    for run in range(15):
        clock.advance(120)
        agent.turn(answer=f"{15 - run} tests failing")
    assert agent.executions == 16


def hook(gateway: RunningTether, key: str, event: str, **fields: object) -> httpx.Response:
    payload = {
        "session_id": "hooked",
        "transcript_path": "/tmp/t.jsonl",
        "cwd": "/work",
        "permission_mode": "bypassPermissions",
        "hook_event_name": event,
        **fields,
    }
    return httpx.post(
        f"{gateway.url}/hooks/claude-code",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
    )


def test_post_tool_use_answers_count_and_pre_tool_use_denies_the_next_repeat(
    gateway: RunningTether,
) -> None:
    key = gateway.create_agent("hooked-agent", "p")
    gateway.set_guards("p", **{**QUIET, "tool_repeat_limit": 3})
    command = {"command": "terraform plan", "description": "plan"}
    failure = {"stdout": "", "stderr": "Error: state lock held", "interrupted": False}
    for n in range(3):
        pre = hook(
            gateway, key, "PreToolUse", tool_name="Bash", tool_input=command, tool_use_id=f"t{n}"
        )
        assert pre.json()["hookSpecificOutput"]["permissionDecision"] == "allow"
        post = hook(
            gateway,
            key,
            "PostToolUse",
            tool_name="Bash",
            tool_input=command,
            tool_use_id=f"t{n}",
            tool_response=failure,
        )
        assert post.status_code == 200 and post.json() == {}
    fourth = hook(
        gateway, key, "PreToolUse", tool_name="Bash", tool_input=command, tool_use_id="t3"
    )
    output = fourth.json()["hookSpecificOutput"]
    assert output["permissionDecision"] == "deny"
    assert output["permissionDecisionReason"].startswith("tether: this Bash call already gave")
    assert "tether: tether:" not in output["permissionDecisionReason"]
    other = hook(
        gateway, key, "PreToolUse", tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="t4"
    )
    assert other.json()["hookSpecificOutput"]["permissionDecision"] == "allow"


def test_every_hook_event_of_a_killed_session_stops_claude_code(gateway: RunningTether) -> None:
    key = gateway.create_agent("hooked-agent", "p")
    assert hook(gateway, key, "UserPromptSubmit", prompt="deploy").json() == {}
    killed = gateway.call("POST", "/sessions/hooked/kill", json={"reason": "incident 7"})
    assert killed.status_code == 200, killed.text
    answers = {
        "PreToolUse": hook(
            gateway,
            key,
            "PreToolUse",
            tool_name="Bash",
            tool_input={"command": "ls"},
            tool_use_id="a",
        ),
        "PostToolUse": hook(
            gateway,
            key,
            "PostToolUse",
            tool_name="Bash",
            tool_input={"command": "sleep 30"},
            tool_use_id="b",
            tool_response={"stdout": "done"},
        ),
        "Stop": hook(gateway, key, "Stop", stop_hook_active=False),
        "UserPromptSubmit": hook(gateway, key, "UserPromptSubmit", prompt="go on"),
    }
    for event, answer in answers.items():
        assert answer.status_code == 200, (event, answer.text)
        body = answer.json()
        assert body["continue"] is False, event
        assert body["stopReason"].startswith("tether: session hooked was terminated"), event
        assert "incident 7" in body["stopReason"] and "tether: tether:" not in body["stopReason"]
    assert answers["PreToolUse"].json()["hookSpecificOutput"]["permissionDecision"] == "deny"
    events = gateway.call("GET", "/audit", params={"session": "hooked"}).json()
    refused = [e for e in events if e["result"] == "deny"]
    assert {e["action"] for e in refused} >= {"tool_result:Bash", "hook:Stop"}
    assert not [e for e in events if e["action"] == "tool_result:Bash" and e["result"] == "ok"]


def test_a_project_that_requires_hooks_refuses_tool_results_no_hook_saw(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk, receiver: Receiver
) -> None:
    key = gateway.create_agent("unhooked", "p")
    gateway.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url})
    gateway.set_guards("p", **{**QUIET, "require_hooks": True})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "rm -rf /srv/prod"})
    agent = ToolLoop(sdk(gateway, key, "hooked"))
    first = agent.turn()
    (use,) = [b for b in first.content if b.type == "tool_use"]
    error = refusal(lambda: agent.turn(answer="removed"))
    assert error.status_code == 423
    assert error.body["error"]["code"] == "unverified_tool_execution"
    assert use.id in error.body["error"]["message"]
    events = gateway.call("GET", "/audit", params={"session": "hooked"}).json()
    assert [e for e in events if e["action"] == "guard:unverified_tool_execution"]
    deadline = time.monotonic() + 10
    while not receiver.deliveries:
        assert time.monotonic() < deadline, "no alert"
        time.sleep(0.05)
    assert "unverified_tool_execution" in receiver.deliveries[0].body.decode()

    agent.messages.pop()
    decided = hook(
        gateway,
        key,
        "PreToolUse",
        tool_name="Bash",
        tool_input={"command": "ls"},
        tool_use_id=use.id,
    )
    assert decided.status_code == 200
    assert agent.turn(answer="ls output").stop_reason == "tool_use"
