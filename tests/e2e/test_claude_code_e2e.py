"""The real Claude Code CLI, headless, through tether against the scripted fake upstream:
the controls must stop it, not only an SDK script."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.claude_code import ClaudeCode, hook_settings
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "repo"
    path.mkdir()
    yield path


def audit(tether: RunningTether, **params: str) -> list[dict]:
    events: list[dict] = tether.call("GET", "/audit", params={"limit": 500, **params}).json()
    return events


@pytest.mark.parametrize("hooks", [False, True], ids=["gateway-only", "with-hooks"])
def test_claude_code_looping_on_a_failing_command_runs_it_five_times_at_most(
    gateway: RunningTether, upstream: RunningFake, workdir: Path, hooks: bool
) -> None:
    key = gateway.create_agent("claude-loop", "p")
    upstream.fake.default = FakeReply(
        kind="tool_use",
        tool_name="Bash",
        tool_input={"command": "echo run >> runs.log; cat missing.txt", "description": "retry"},
    )
    claude = ClaudeCode(gateway, key, workdir, hook_settings(gateway) if hooks else None)
    run = claude.run()
    assert (workdir / "runs.log").read_text().count("run") == 5
    assert run.returncode != 0
    assert "tether: this Bash call already gave the same result 5 times" in run.result
    assert "authenticate" not in run.result.lower()
    # Five answers ran the command, the sixth was withheld; Claude Code's repeat of it
    # without streaming is refused before upstream (#23).
    assert len(upstream.fake.received) == 6
    trips = audit(gateway, session=run.session_id, action="guard:repeated_tool_call")
    assert trips and trips[0]["agent"] == "claude-loop"


def test_claude_code_in_a_429_storm_reaches_upstream_at_most_twice_a_cooldown(
    gateway: RunningTether, upstream: RunningFake, workdir: Path
) -> None:
    key = gateway.create_agent("claude-storm", "p")
    cooldown = 8
    gateway.set_guards(
        "p", breaker_cooldown_seconds=cooldown, breaker_max_cooldown_seconds=cooldown
    )
    upstream.fake.default = FakeReply(
        kind="error", status=429, error_type="rate_limit_error", retry_after=1
    )
    # retry-after is the breaker's remaining cool-down (#23), so Claude Code waits it out and
    # retries instead of giving up at once; four retries see it reopen and refuse again.
    claude = ClaudeCode(gateway, key, workdir, env={"CLAUDE_CODE_MAX_RETRIES": "4"})
    run = claude.run(timeout=300)
    reached = [
        e["ts"]
        for e in audit(gateway, action="model:messages:completed")
        if e["code"] == "http_429"
    ]
    times = sorted(time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) for at in reached)
    assert len(upstream.fake.received) == len(times) >= 3
    for n, at in enumerate(times):
        # Whole seconds: two answers a cool-down apart may print one second closer.
        assert sum(1 for other in times[n:] if other - at < cooldown - 1) <= 2, times
    assert "tether: the Anthropic API kept failing" in run.result
    refusals = audit(gateway, action="guard:upstream_circuit_open")
    assert refusals and all(e["session_id"] == run.session_id for e in refusals)


def test_killing_a_session_stops_claude_code_after_the_tool_that_was_running(
    gateway: RunningTether, upstream: RunningFake, workdir: Path
) -> None:
    key = gateway.create_agent("claude-long", "p")
    upstream.fake.enqueue(
        FakeReply(
            kind="tool_use",
            tool_name="Bash",
            tool_input={"command": "sleep 3; echo first >> ran.log", "description": "long"},
        )
    )
    upstream.fake.default = FakeReply(
        kind="tool_use",
        tool_name="Bash",
        tool_input={"command": "echo second >> ran.log", "description": "next"},
    )
    claude = ClaudeCode(gateway, key, workdir, hook_settings(gateway))
    started = time.monotonic()
    process, session = claude.start()
    deadline = time.monotonic() + 60
    while not [e for e in audit(gateway, session=session) if e["source"] == "claude_code_hook"]:
        assert time.monotonic() < deadline and process.poll() is None, "the tool never started"
        time.sleep(0.1)
    killed = gateway.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway deploy"})
    assert killed.status_code == 200, killed.text
    calls_at_kill = len(upstream.fake.received)
    run = ClaudeCode.finish(process, session, started)
    assert (workdir / "ran.log").read_text() == "first\n", "no tool ran after the kill"
    assert len(upstream.fake.received) == calls_at_kill, "no model call after the kill"
    assert run.output["terminal_reason"] == "hook_stopped", run.output
    post = [e for e in audit(gateway, session=session) if e["action"] == "tool_result:Bash"]
    assert post and post[-1]["result"] == "deny" and post[-1]["code"] == "session_terminated"


def test_claude_code_on_opus_works_under_a_small_session_limit_until_it_is_spent(
    gateway: RunningTether, upstream: RunningFake, workdir: Path
) -> None:
    key = gateway.create_agent("claude-opus", "p")
    limit = gateway.call(
        "PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.5}
    )
    assert limit.status_code == 200, limit.text
    upstream.fake.default = FakeReply(
        kind="tool_use",
        tool_name="Bash",
        tool_input={"command": "date +%s%N", "description": "time"},
        output_tokens=300,
    )
    run = ClaudeCode(gateway, key, workdir).run(timeout=240)
    calls = [e for e in audit(gateway, session=run.session_id) if e["action"] == "model:messages"]
    assert calls[0]["result"] == "allow", "max_tokens 128000 no longer refuses the first call"
    allowed = [e for e in calls if e["result"] == "allow"]
    assert len(allowed) >= 3
    assert "per-session budget of project 'p'" in run.result
    assert "authenticate" not in run.result.lower()
    completed = audit(gateway, session=run.session_id, action="model:messages:completed")
    spent = sum(e["attributes"]["cost_usd"] or 0 for e in completed)
    assert spent <= 0.5 + 2048 * 20 / 1_000_000, spent
