"""Runaway-loop guards through the real front doors: the anthropic SDK on the gateway, the
Claude Code hook, the admin API and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import anthropic
import httpx
import pytest
from typer.testing import CliRunner

from tests.support.fake_upstream import RunningFake
from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tether.cli.main import app
from tether.fakes.anthropic import FakeReply

MODEL = "claude-sonnet-5"
Sdk = Callable[..., anthropic.Anthropic]
QUIET = {
    "repeat_limit": None,
    "tool_repeat_limit": None,
    "max_retries": None,
    "stall_calls": None,
    "stall_minutes": None,
    "breaker_failures": None,
}
ONLY_REPEAT = {**QUIET, "repeat_limit": 2, "on_trip": "pause"}
"""Only the repeat guard, pausing the session at its third identical call."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def ask(
    agent: anthropic.Anthropic, text: str = "run the tests", stream: bool = False
) -> anthropic.types.Message:
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": text}]
    if stream:
        with agent.messages.stream(model=MODEL, max_tokens=100, messages=messages) as streamed:
            return streamed.get_final_message()
    return agent.messages.create(model=MODEL, max_tokens=100, messages=messages)


class ToolLoop:
    """An agent on the raw API that runs every tool the model asks for and sends back what
    it answered, as an agent loop does; counts the tool calls it was handed."""

    def __init__(self, client: anthropic.Anthropic, stream: bool = False) -> None:
        self.client, self.stream = client, stream
        self.messages: list[dict] = [{"role": "user", "content": "fix the build"}]
        self.executions = 0
        self._pending: list[str] = []

    def turn(self, answer: str | None = None) -> anthropic.types.Message:
        if answer is not None:
            self.messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": i,
                            "content": answer,
                            "is_error": True,
                        }
                        for i in self._pending
                    ],
                }
            )
        arguments = {"model": MODEL, "max_tokens": 100, "messages": self.messages}
        if self.stream:
            with self.client.messages.stream(**arguments) as streamed:  # type: ignore[arg-type]
                message = streamed.get_final_message()
        else:
            message = self.client.messages.create(**arguments)  # type: ignore[arg-type]
        uses = [b for b in message.content if b.type == "tool_use"]
        self.messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input} for b in uses
                ],
            }
        )
        self._pending = [b.id for b in uses]
        self.executions += len(uses)
        return message


def refusal(call) -> anthropic.APIStatusError:  # type: ignore[no-untyped-def]
    with pytest.raises(anthropic.APIStatusError) as refused:
        call()
    return refused.value


def wait_settled(tether: RunningTether, calls: int, session: str | None = None) -> None:
    """Until ``calls`` model calls are settled (their completion events are in the trail:
    the guards have seen their outcome by then)."""
    params = {"action": "model:messages:completed"} | ({"session": session} if session else {})
    deadline = time.monotonic() + 10
    while len(tether.call("GET", "/audit", params=params).json()) < calls:
        assert time.monotonic() < deadline, "calls not settled"
        time.sleep(0.02)


def session_state(tether: RunningTether, session: str) -> str:
    state: str = tether.call("GET", f"/sessions/{session}").json()["state"]
    return state


def test_the_same_call_more_than_the_limit_is_refused_and_other_sessions_go_on(
    gateway: RunningTether,
    sdk: Sdk,
) -> None:
    key = gateway.create_agent("looper", "p")
    gateway.set_guards("p", **{**QUIET, "repeat_limit": 3})
    agent = sdk(gateway, key, "loop-1")
    for _ in range(3):
        ask(agent)
    error = refusal(lambda: ask(agent))
    assert error.status_code == 423
    assert error.body["error"]["code"] == "repeated_call"
    assert "more than 3 times in 300 s" in error.body["error"]["message"]
    ask(agent, "something else")
    ask(sdk(gateway, key, "loop-2"))
    events = gateway.call("GET", "/audit", params={"session": "loop-1"}).json()
    denied = [e for e in events if e["result"] == "deny" and e["action"] == "model:messages"]
    assert [e["code"] for e in denied] == ["repeated_call"]
    trips = [e for e in events if e["action"] == "guard:repeated_call"]
    assert len(trips) == 1 and trips[0]["agent"] == "looper"
    assert "the call was refused" in trips[0]["reason"]


def test_a_guard_alerts_once_a_session_however_often_it_trips(
    gateway: RunningTether, receiver: Receiver, sdk: Sdk
) -> None:
    """Every trip is refused and audited; the webhook hears of the first of its kind in
    each session only (an agent retrying a refused call would otherwise flood it)."""
    key = gateway.create_agent("retrier", "p")
    gateway.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url})
    gateway.set_guards("p", **{**QUIET, "repeat_limit": 2, "on_trip": "deny"})
    looping = sdk(gateway, key, "alert-once-1")
    for _ in range(2):
        ask(looping)
    for _ in range(3):
        assert refusal(lambda: ask(looping)).body["error"]["code"] == "repeated_call"
    other = sdk(gateway, key, "alert-once-2")
    for _ in range(2):
        ask(other)
    refusal(lambda: ask(other))

    def texts() -> list[str]:
        return [json.loads(d.body)["text"] for d in receiver.deliveries]

    deadline = time.monotonic() + 10
    while not any("alert-once-2" in text for text in texts()):
        assert time.monotonic() < deadline, "the second session's alert never came"
        time.sleep(0.05)
    time.sleep(0.5)
    assert [("alert-once-1" in t, "repeated_call" in t) for t in texts()].count((True, True)) == 1
    events = gateway.call("GET", "/audit", params={"session": "alert-once-1"}).json()
    assert len([e for e in events if e["action"] == "guard:repeated_call"]) == 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_tool_call_that_keeps_giving_the_same_result_is_not_delivered_again(
    gateway: RunningTether,
    upstream: RunningFake,
    receiver: Receiver,
    stream: bool,
    sdk: Sdk,
) -> None:
    key = gateway.create_agent("claude-deploy-01", "p")
    gateway.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url})
    gateway.set_guards("p", **{**QUIET, "tool_repeat_limit": 2, "on_trip": "terminate"})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "make deploy"})
    agent = ToolLoop(sdk(gateway, key, "tool-loop"), stream)
    first = agent.turn()
    second = agent.turn(answer="make: *** [deploy] Error 2")
    assert first.stop_reason == second.stop_reason == "tool_use"
    error = refusal(lambda: agent.turn(answer="make: *** [deploy] Error 2"))
    assert error.body["error"]["code"] == "repeated_tool_call"
    assert "gave the same result 2 times" in error.body["error"]["message"]
    assert agent.executions == 2, "the third identical call was never handed to the agent"
    assert session_state(gateway, "tool-loop") == "terminated"
    session = gateway.call("GET", "/sessions/tool-loop").json()
    assert session["state_by"] == "guard:repeated_tool_call"
    events = gateway.call("GET", "/audit", params={"session": "tool-loop"}).json()
    assert [e["result"] for e in events if e["action"] == "guard:repeated_tool_call"] == [
        "terminate"
    ]
    cut = [e for e in events if e["action"] == "model:messages:completed"][-1]
    assert cut["result"] == "cut" and "gave the same result" in cut["reason"]
    later = refusal(lambda: ask(sdk(gateway, key, "tool-loop"), "turn 4", stream))
    assert later.status_code == 423 and later.body["error"]["code"] == "session_terminated"
    revived = gateway.call("POST", "/sessions/tool-loop/resume", json={"reason": "try"})
    assert revived.status_code == 409 and "terminated" in revived.text
    deadline = time.monotonic() + 10
    while not receiver.deliveries:
        assert time.monotonic() < deadline, "no guard alert delivered"
        time.sleep(0.05)
    text = json.loads(receiver.deliveries[0].body)["text"]
    assert "repeated_tool_call" in text and "tool-loop" in text and "terminated" in text
    ask(sdk(gateway, key, "another-session"), "fresh work")


def test_a_polling_agent_whose_results_change_is_not_stopped(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    key = gateway.create_agent("poller", "p")
    gateway.set_guards("p", **{**QUIET, "tool_repeat_limit": 2})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "pytest -q"})
    agent = ToolLoop(sdk(gateway, key, "tdd"))
    agent.turn()
    for run in range(12):
        agent.turn(answer=f"{12 - run} failed, {run} passed")
    assert agent.executions == 13


def test_retries_beyond_the_limit_are_refused_before_reaching_upstream(
    gateway: RunningTether,
    upstream: RunningFake,
    sdk: Sdk,
) -> None:
    key = gateway.create_agent("retrier", "p")
    gateway.set_guards("p", **{**QUIET, "max_retries": 2})
    for _ in range(10):
        upstream.fake.enqueue(FakeReply(kind="error", status=529, error_type="overloaded_error"))
    agent = sdk(gateway, key, "retry-storm", retries=6)
    before = len(upstream.fake.received)
    error = refusal(lambda: ask(agent))
    assert error.status_code == 423 and error.body["error"]["code"] == "retry_limit"
    assert "retried 3 times; the project allows 2" in error.body["error"]["message"]
    assert len(upstream.fake.received) - before == 3


def test_a_session_whose_calls_keep_failing_is_stopped(
    gateway: RunningTether,
    upstream: RunningFake,
    sdk: Sdk,
) -> None:
    key = gateway.create_agent("failer", "p")
    gateway.set_guards("p", **{**QUIET, "max_retries": 3})
    upstream.fake.default = FakeReply(kind="error", status=400, error_type="invalid_request_error")
    agent = sdk(gateway, key, "failing")
    for turn in range(4):
        assert refusal(lambda: ask(agent, f"attempt {turn}")).status_code == 400  # noqa: B023
    wait_settled(gateway, 4, "failing")
    error = refusal(lambda: ask(agent, "attempt 5"))
    assert error.status_code == 423 and error.body["error"]["code"] == "retry_limit"
    assert "last 4 calls failed" in error.body["error"]["message"]


def test_failures_on_tethers_side_do_not_count_as_the_agents_retries(
    gateway: RunningTether, sdk: Sdk
) -> None:
    gateway.create_project("no-key")
    gateway.set_guards("no-key", **{**QUIET, "max_retries": 1})
    agent = sdk(gateway, gateway.create_agent("waiting", "no-key"), "no-key-session")
    for turn in range(4):
        error = refusal(lambda: ask(agent, f"attempt {turn}"))  # noqa: B023
        assert error.status_code == 503
        assert error.body["error"]["code"] == "no_upstream_credential"
    wait_settled(gateway, 4, "no-key-session")
    assert refusal(lambda: ask(agent, "again")).body["error"]["code"] == "no_upstream_credential"


def test_the_circuit_breaker_holds_at_least_its_cool_down_and_doubles_it_on_each_reopening(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    """Each check reads the breaker's ``retry-after`` right after the failure that opened
    it, so a loaded machine only has to answer within 3 s, not keep to a schedule."""
    key = gateway.create_agent("busy", "p")
    gateway.set_guards(
        "p",
        **{**QUIET, "breaker_failures": 3, "breaker_cooldown_seconds": 3},
        breaker_max_cooldown_seconds=10,
    )
    for retry_after in (1, 1, 6):
        upstream.fake.enqueue(
            FakeReply(
                kind="error", status=429, error_type="rate_limit_error", retry_after=retry_after
            )
        )
    for n in range(3):
        assert refusal(lambda: ask(sdk(gateway, key, f"s{n}"))).status_code == 429  # noqa: B023
    wait_settled(gateway, 3)
    opened = time.monotonic()
    reached = len(upstream.fake.received)

    def fast() -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/messages",
            json={
                "model": MODEL,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )

    refused = fast()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "upstream_circuit_open"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 4 <= int(refused.headers["retry-after"]) <= 6, "upstream's 6 s beat the 3 s cool-down"
    assert len(upstream.fake.received) == reached
    scraped = httpx.get(
        f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {gateway.admin_token}"}
    )
    assert "tether_circuit_breakers_open 1.0" in scraped.text
    trips = gateway.call("GET", "/audit", params={"action": "guard:upstream_circuit_open"}).json()
    assert len(trips) == 1 and trips[0]["result"] == "deny"
    time.sleep(max(0.0, opened + 6.1 - time.monotonic()))
    upstream.fake.enqueue(FakeReply(kind="error", status=529, error_type="overloaded_error"))
    assert refusal(lambda: ask(sdk(gateway, key, "half-open"))).status_code == 529
    wait_settled(gateway, 4)
    reopened_at = time.monotonic()
    reopened = fast()
    assert (
        reopened.status_code == 429 and reopened.json()["error"]["code"] == "upstream_circuit_open"
    )
    assert int(reopened.headers["retry-after"]) >= 4, "the second opening lasts twice 3 s"
    time.sleep(max(0.0, reopened_at + 6.1 - time.monotonic()))
    assert ask(sdk(gateway, key, "recovered")).stop_reason == "end_turn"
    assert ask(sdk(gateway, key, "after")).stop_reason == "end_turn"
    trips = gateway.call("GET", "/audit", params={"action": "guard:upstream_circuit_open"}).json()
    assert len(trips) == 2, "every refusal is audited"


def test_a_model_that_asks_for_nothing_new_is_stopped_for_no_progress(
    gateway: RunningTether,
    upstream: RunningFake,
    sdk: Sdk,
) -> None:
    key = gateway.create_agent("staller", "p")
    gateway.set_guards("p", **{**QUIET, "stall_calls": 3})
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "cat log.txt"})
    agent = sdk(gateway, key, "stalled")
    for turn in range(4):
        ask(agent, f"turn {turn}")
    wait_settled(gateway, 4, "stalled")
    error = refusal(lambda: ask(agent, "turn 5"))
    assert error.status_code == 423 and error.body["error"]["code"] == "no_progress"
    assert "last 3 answers" in error.body["error"]["message"]


def test_a_hook_repeating_one_bash_command_is_denied_and_a_paused_session_resumes(
    gateway: RunningTether, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = gateway.create_agent("claude-code", "p")
    gateway.set_guards("p", **{**QUIET, "repeat_limit": 2, "on_trip": "pause"})

    def hook(command: str) -> dict:
        payload = {
            "session_id": "hooked",
            "transcript_path": "/tmp/t.jsonl",
            "cwd": "/work",
            "permission_mode": "default",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command},
            "tool_use_id": "toolu_1",
        }
        answer = httpx.post(
            f"{gateway.url}/hooks/claude-code",
            json=payload,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text
        output: dict = answer.json()["hookSpecificOutput"]
        return output

    assert hook("git status")["permissionDecision"] == "allow"
    assert hook("git status")["permissionDecision"] == "allow"
    third = hook("git status")
    assert third["permissionDecision"] == "deny"
    assert "more than 2 times" in third["permissionDecisionReason"]
    assert session_state(gateway, "hooked") == "paused"
    assert hook("ls")["permissionDecision"] == "deny"

    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    resumed = CliRunner().invoke(app, ["sessions", "resume", "hooked", "-r", "looked at it"])
    assert resumed.exit_code == 0, resumed.output
    assert session_state(gateway, "hooked") == "active"
    assert hook("ls")["permissionDecision"] == "allow"


def test_guards_are_shown_and_changed_with_clear_errors(
    gateway: RunningTether, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = gateway.call("GET", "/projects/p/guards").json()
    assert shown["repeat_limit"] == 20 and shown["on_trip"] == "deny"
    assert shown["tool_repeat_limit"] == 5 and shown["stall_minutes"] == 10
    assert shown["breaker_failures"] == 2 and shown["require_hooks"] is False
    bad = gateway.call("PATCH", "/projects/p/guards", json={"repeat_limit": 0})
    assert bad.status_code == 400 and "repeat_limit" in bad.text
    bad = gateway.call("PATCH", "/projects/p/guards", json={"on_trip": None})
    assert bad.status_code == 400 and "on_trip cannot be null" in bad.text
    bad = gateway.call("PATCH", "/projects/p/guards", json={"on_trip": "explode"})
    assert bad.status_code == 400 and "on_trip" in bad.text
    empty = gateway.call("PATCH", "/projects/p/guards", json={})
    assert empty.status_code == 400 and "nothing to change" in empty.text
    bad = gateway.call("PATCH", "/projects/p/guards", json={"repeat_limt": 3})
    assert bad.status_code == 400 and "repeat_limt" in bad.text
    assert (
        gateway.call("PATCH", "/projects/nope/guards", json={"max_retries": 1}).status_code == 404
    )

    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    runner = CliRunner()
    changed = runner.invoke(
        app, ["guards", "set", "p", "--repeat-limit", "off", "--on-trip", "pause", "--json"]
    )
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.output)["repeat_limit"] is None
    table = runner.invoke(app, ["guards", "show", "p"])
    assert table.exit_code == 0 and "pause" in table.output
    wrong = runner.invoke(app, ["guards", "set", "p", "--max-retries", "lots"])
    assert wrong.exit_code != 0 and "whole number or 'off'" in wrong.output
