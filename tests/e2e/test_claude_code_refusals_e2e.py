"""Tether's refusals as the real Claude Code CLI meets them (#23): a rotated key stops a
running agent after one refused request, and the key helper ``tether connect`` wrote is
its way back in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.claude_code import ClaudeCode, hook_settings
from tests.support.fake_upstream import RunningFake
from tests.support.server import PERMIT_ALL, RunningTether
from tether.fakes.anthropic import FakeReply

GATED = "for i in $(seq 600); do [ -f go ] && break; sleep 0.1; done; echo first >> ran.log"
"""A tool that runs until the test creates ``go`` (60 s at most): the rotation lands while
it runs, whatever the machine's load."""


def key_refusals(tether: RunningTether, door: str = "anthropic") -> int:
    """How many requests ``door`` refused for a missing, bad, rotated or revoked key."""
    answer = httpx.get(
        f"{tether.url}/metrics", headers={"Authorization": f"Bearer {tether.admin_token}"}
    )
    assert answer.status_code == 200, answer.text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
            if sample.name == "tether_unauthenticated_refusals_total"
            and sample.labels.get("door") == door
        )
    )


def tether_cli(tether: RunningTether, client_dir: Path, *args: str) -> str:
    """The ``tether`` CLI as an operator runs it; its standard output."""
    env = {**os.environ, "TETHER_URL": tether.url, "TETHER_ADMIN_TOKEN": tether.admin_token}
    env["TETHER_DATA_DIR"] = str(client_dir)
    ran = subprocess.run(
        [sys.executable, "-m", "tether.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def script_gated_tool_then(upstream: RunningFake, then: FakeReply) -> None:
    upstream.fake.enqueue(
        FakeReply(kind="tool_use", tool_name="Bash", tool_input={"command": GATED})
    )
    upstream.fake.default = then


def wait_for_first_call(upstream: RunningFake, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not upstream.fake.received:
        assert time.monotonic() < deadline and process.poll() is None, "claude never called"
        time.sleep(0.05)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_rotating_a_running_claude_codes_key_stops_it_after_one_refused_request(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    workdir = tmp_path / "repo"
    workdir.mkdir()
    key = gateway.create_agent("claude-rotated", "p")
    script_gated_tool_then(
        upstream, FakeReply(kind="tool_use", tool_name="Bash", tool_input={"command": "echo x"})
    )
    started = time.monotonic()
    process, session = ClaudeCode(gateway, key, workdir).start()
    try:
        wait_for_first_call(upstream, process)
        tether_cli(gateway, tmp_path / "client", "keys", "rotate", "claude-rotated")
        (workdir / "go").touch()
        refused_at = None
        deadline = time.monotonic() + 30
        while True:
            exited = process.poll() is not None
            if refused_at is None and key_refusals(gateway) > 0:
                refused_at = time.monotonic()
            if exited:
                break
            assert time.monotonic() < deadline, (
                f"claude kept going after its key was rotated: {key_refusals(gateway)} 401s"
            )
            time.sleep(0.05)
        exited_at = time.monotonic()
    finally:
        stop(process)
    run = ClaudeCode.finish(process, session, started)
    assert refused_at is not None, run.output
    assert exited_at - refused_at < 2, exited_at - refused_at
    assert key_refusals(gateway) == 1, "Claude Code retried the refused key"
    assert len(upstream.fake.received) == 1
    assert (workdir / "ran.log").read_text() == "first\n"
    assert run.returncode != 0
    assert "API Error: 401 the agent key has expired (it was rotated)" in run.result, run.result


def test_after_a_rotation_an_api_key_helper_printing_the_new_key_lets_claude_code_go_on(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    workdir, key_file = tmp_path / "repo", tmp_path / "agent.key"
    workdir.mkdir()
    key_file.write_text(gateway.create_agent("claude-helper", "p") + "\n")
    script_gated_tool_then(upstream, FakeReply(kind="text", text="all done"))
    upstream.fake.enqueue(
        FakeReply(
            kind="tool_use", tool_name="Bash", tool_input={"command": "echo second >> ran.log"}
        )
    )
    helper = {"apiKeyHelper": f"cat {key_file}"}
    claude = ClaudeCode(gateway, "", workdir, helper, env={"ANTHROPIC_API_KEY": ""})
    started = time.monotonic()
    process, session = claude.start()
    try:
        wait_for_first_call(upstream, process)
        new_key = json.loads(
            tether_cli(gateway, tmp_path / "client", "keys", "rotate", "claude-helper", "--json")
        )["key"]
        key_file.write_text(new_key + "\n")
        (workdir / "go").touch()
        run = ClaudeCode.finish(process, session, started, timeout=60)
    finally:
        stop(process)
    assert run.returncode == 0, run.output
    assert run.result == "all done"
    assert (workdir / "ran.log").read_text() == "first\nsecond\n"
    assert key_refusals(gateway) == 1, "one 401, then the helper's new key"
    assert len(upstream.fake.received) == 3


@pytest.mark.parametrize("event", ["PreToolUse", "PostToolUse", "Stop"])
def test_a_hook_refused_for_its_key_stops_claude_code_whatever_the_event(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path, event: str
) -> None:
    """The hooks hold a key tether no longer takes (rotated, revoked): each event's
    refusal stops the turn; before a tool, the tool does not run."""
    workdir = tmp_path / "repo"
    workdir.mkdir()
    key = gateway.create_agent("claude-hooked", "p")
    upstream.fake.enqueue(
        FakeReply(kind="tool_use", tool_name="Bash", tool_input={"command": "echo x >> ran.log"})
    )
    upstream.fake.default = FakeReply(kind="text", text="all done")
    settings = hook_settings(gateway, (event,))
    claude = ClaudeCode(gateway, key, workdir, settings, env={"TETHER_KEY": "tth_rotated"})
    run = claude.run(timeout=90)
    assert key_refusals(gateway, "claude_code_hook") == 1
    assert (workdir / "ran.log").exists() is (event != "PreToolUse")
    assert run.output["terminal_reason"] in ("hook_stopped", "stop_hook_prevented"), run.output
    assert run.result != "all done"
    assert len(upstream.fake.received) == (1 if event != "Stop" else 2)


def refuse(gateway: RunningTether, case: str) -> str:
    """Puts agent ``cc`` (project ``p``) in ``case``'s situation before Claude Code starts;
    the part of tether's reason Claude Code must show."""
    if case == "budget":
        budget = {"project": "p", "period": "session", "limit_usd": 0.000001}
        assert gateway.call("PUT", "/budgets", json=budget).status_code == 200
        return "API Error: 402 tether: the per-session budget of project 'p'"
    if case == "policy":
        gateway.apply_policy(
            "p",
            PERMIT_ALL + '@reason("no model calls for this agent")\n'
            'forbid(principal, action in Action::"model", resource);\n',
        )
        return "API Error: 403 model:messages on anthropic:model/claude-opus-5-5 is forbidden"
    if case == "stopped agent":
        stopped = gateway.call("POST", "/agents/cc/stop", json={"reason": "incident 7"})
        assert stopped.status_code == 200, stopped.text
        return "API Error: 423 tether: agent 'cc' was stopped by admin:bootstrap: incident 7"
    assert case == "paused project"
    paused = gateway.call("POST", "/projects/p/pause", json={"reason": "incident 7"})
    assert paused.status_code == 200, paused.text
    return "API Error: 423 tether: project 'p' is paused by admin:bootstrap"


@pytest.mark.parametrize("case", ["budget", "policy", "stopped agent", "paused project"])
def test_claude_code_shows_each_refusal_once_and_does_not_retry_it(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path, case: str
) -> None:
    workdir = tmp_path / "repo"
    workdir.mkdir()
    key = gateway.create_agent("cc", "p")
    shown = refuse(gateway, case)
    run = ClaudeCode(gateway, key, workdir).run(timeout=60)
    print(f"{case}: {run.result}")
    decided = gateway.call("GET", "/audit", params={"action": "model:", "limit": 500}).json()
    refusals = [e for e in decided if e["agent"] == "cc" and e["result"] == "deny"]
    assert len(refusals) == 1, f"Claude Code retried: {[e['code'] for e in refusals]}"
    assert not upstream.fake.received
    assert run.returncode != 0
    assert shown in run.result, run.result
    assert run.seconds < 30


def test_claude_code_waits_out_the_breakers_retry_after_and_goes_on(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    workdir = tmp_path / "repo"
    workdir.mkdir()
    key = gateway.create_agent("cc", "p")
    gateway.set_guards("p", breaker_failures=1, breaker_cooldown_seconds=3)
    upstream.fake.enqueue(FakeReply(kind="error", status=529, error_type="overloaded_error"))
    upstream.fake.default = FakeReply(kind="text", text="all done")
    run = ClaudeCode(gateway, key, workdir).run(timeout=120)
    trips = gateway.call("GET", "/audit", params={"action": "guard:upstream_circuit_open"}).json()
    assert trips, "the breaker never refused"
    assert run.returncode == 0, run.output
    assert run.result == "all done"
