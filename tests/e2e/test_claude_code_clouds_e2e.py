"""The real Claude Code CLI in Bedrock mode and in Vertex mode, headless, through tether's
``/bedrock`` and ``/vertex`` doors against the fake clouds: the same controls stop it as on
the Messages door, and the agent holds no cloud credential (only its tether key)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.claude_code import ClaudeCode, hook_settings
from tests.support.clouds import bedrock_env, give_clouds, vertex_env
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.cli.main import app
from tether.fakes.anthropic import FakeReply

CLOUDS = ["bedrock", "vertex"]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "repo"
    path.mkdir()
    yield path


@pytest.fixture
def clouds(gateway: RunningTether, upstream: RunningFake) -> RunningTether:
    """The gateway, with project ``p`` holding the fake clouds' credentials."""
    give_clouds(gateway, "p", upstream)
    return gateway


def claude_on(
    cloud: str, tether: RunningTether, key: str, workdir: Path, hooks: bool = False
) -> ClaudeCode:
    env = bedrock_env(tether, key) if cloud == "bedrock" else vertex_env(tether, key)
    return ClaudeCode(tether, key, workdir, hook_settings(tether) if hooks else None, env=env)


def audit(tether: RunningTether, **params: str) -> list[dict]:
    events: list[dict] = tether.call("GET", "/audit", params={"limit": 500, **params}).json()
    return events


def cloud_calls(upstream: RunningFake, cloud: str) -> int:
    marker = "/model/" if cloud == "bedrock" else "/publishers/anthropic/"
    return sum(1 for r in upstream.fake.received if marker in r.path)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_claude_code_on_a_cloud_looping_on_a_failing_command_runs_it_five_times_at_most(
    clouds: RunningTether, upstream: RunningFake, workdir: Path, cloud: str
) -> None:
    key = clouds.create_agent(f"claude-{cloud}-loop", "p")
    upstream.fake.default = FakeReply(
        kind="tool_use",
        tool_name="Bash",
        tool_input={"command": "echo run >> runs.log; cat missing.txt", "description": "retry"},
    )
    run = claude_on(cloud, clouds, key, workdir).run()
    assert (workdir / "runs.log").read_text().count("run") == 5
    assert run.returncode != 0
    assert "tether: this Bash call already gave the same result 5 times" in run.result
    assert "authenticate" not in run.result.lower()
    trips = audit(clouds, session=run.session_id, action="guard:repeated_tool_call")
    assert trips and trips[0]["agent"] == f"claude-{cloud}-loop"
    calls = audit(clouds, session=run.session_id, action="model:messages")
    assert calls and {e["source"] for e in calls} == {cloud}
    assert not [r for r in upstream.fake.received if r.path.startswith("/v1/messages")]
    assert cloud_calls(upstream, cloud) == len([e for e in calls if e["result"] == "allow"])


@pytest.mark.parametrize("cloud", CLOUDS)
def test_killing_a_session_stops_claude_code_on_a_cloud_after_the_running_tool(
    clouds: RunningTether, upstream: RunningFake, workdir: Path, cloud: str
) -> None:
    key = clouds.create_agent(f"claude-{cloud}-long", "p")
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
    claude = claude_on(cloud, clouds, key, workdir, hooks=True)
    started = time.monotonic()
    process, session = claude.start()
    deadline = time.monotonic() + 60
    while not [e for e in audit(clouds, session=session) if e["source"] == "claude_code_hook"]:
        assert time.monotonic() < deadline and process.poll() is None, "the tool never started"
        time.sleep(0.1)
    killed = clouds.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway deploy"})
    assert killed.status_code == 200, killed.text
    calls_at_kill = cloud_calls(upstream, cloud)
    run = ClaudeCode.finish(process, session, started)
    assert (workdir / "ran.log").read_text() == "first\n", "no tool ran after the kill"
    assert cloud_calls(upstream, cloud) == calls_at_kill, "no model call after the kill"
    assert run.output["terminal_reason"] == "hook_stopped", run.output
    post = [e for e in audit(clouds, session=session) if e["action"] == "tool_result:Bash"]
    assert post and post[-1]["result"] == "deny" and post[-1]["code"] == "session_terminated"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_killed_session_without_hooks_stops_claude_code_on_a_cloud_at_its_next_call(
    clouds: RunningTether, upstream: RunningFake, workdir: Path, cloud: str
) -> None:
    """The door's own refusal (no hooks to help): shown with tether's reason, not retried."""
    key = clouds.create_agent(f"claude-{cloud}-bare", "p")
    upstream.fake.default = FakeReply(
        kind="tool_use",
        tool_name="Bash",
        tool_input={"command": "sleep 2; echo ran >> ran.log", "description": "slow"},
    )
    claude = claude_on(cloud, clouds, key, workdir)
    started = time.monotonic()
    process, session = claude.start()
    deadline = time.monotonic() + 60
    while not audit(clouds, session=session, action="tool_use:Bash"):
        assert time.monotonic() < deadline and process.poll() is None, "no tool call"
        time.sleep(0.1)
    killed = clouds.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway deploy"})
    assert killed.status_code == 200, killed.text
    run = ClaudeCode.finish(process, session, started, timeout=120)
    assert run.returncode != 0
    assert "runaway deploy" in run.result, run.result
    assert "authenticate" not in run.result.lower()
    refused = [
        e for e in audit(clouds, session=session, action="model:messages") if e["result"] == "deny"
    ]
    assert len(refused) == 1, "Claude Code retried a killed session's call"
    assert run.seconds < 60


@pytest.mark.parametrize("cloud", CLOUDS)
def test_claude_code_on_opus_on_a_cloud_is_held_to_a_small_session_limit_inside_the_stream(
    clouds: RunningTether, upstream: RunningFake, workdir: Path, cloud: str
) -> None:
    key = clouds.create_agent(f"claude-{cloud}-opus", "p")
    limit = clouds.call(
        "PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.5}
    )
    assert limit.status_code == 200, limit.text
    upstream.fake.default = FakeReply(
        kind="tool_use",
        tool_name="Bash",
        tool_input={"command": "date +%s%N", "description": "time"},
        output_tokens=300,
    )
    run = claude_on(cloud, clouds, key, workdir).run(timeout=240)
    calls = [e for e in audit(clouds, session=run.session_id) if e["action"] == "model:messages"]
    assert calls[0]["result"] == "allow", "Opus's max_tokens 128000 refused the first call"
    assert calls[0]["resource"] == "anthropic:model/claude-opus-5-5"
    assert len([e for e in calls if e["result"] == "allow"]) >= 3
    assert "per-session budget of project 'p'" in run.result
    assert "authenticate" not in run.result.lower()
    completed = audit(clouds, session=run.session_id, action="model:messages:completed")
    spent = sum(e["attributes"]["cost_usd"] or 0 for e in completed)
    assert 0.3 < spent <= 0.5 + 2048 * 20 / 1_000_000, spent


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_cloud_session_replays_model_and_tool_calls_in_one_timeline(
    clouds: RunningTether,
    upstream: RunningFake,
    workdir: Path,
    cloud: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = clouds.create_agent(f"claude-{cloud}-replay", "p")
    upstream.fake.enqueue(
        FakeReply(
            kind="tool_use",
            tool_name="Bash",
            tool_input={"command": "echo done > out.txt", "description": "write"},
        )
    )
    run = claude_on(cloud, clouds, key, workdir, hooks=True).run(max_turns=5)
    assert run.returncode == 0, run.result
    assert (workdir / "out.txt").read_text() == "done\n"
    monkeypatch.setenv("TETHER_URL", clouds.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", clouds.admin_token)
    replayed = CliRunner().invoke(app, ["audit", "replay", run.session_id, "--json"])
    assert replayed.exit_code == 0, replayed.output
    events = json.loads(replayed.output)
    sources = [(e["source"], e["action"]) for e in events]
    model = sources.index((cloud, "model:messages"))
    tool = sources.index((cloud, "tool_use:Bash"))
    hook = next(n for n, (source, _) in enumerate(sources) if source == "claude_code_hook")
    assert model < tool < hook
    assert sources.count((cloud, "model:messages:completed")) >= 2


KEY_CARRIERS = [
    ("bedrock", "custom-header"),
    ("bedrock", "bearer-token"),
    ("bedrock", "api-key-helper"),
    ("vertex", "custom-header"),
    ("vertex", "api-key-helper"),
    ("vertex", "auth-token"),
]


@pytest.mark.parametrize(("cloud", "carrier"), KEY_CARRIERS)
def test_each_documented_way_of_carrying_the_tether_key_identifies_the_agent(
    clouds: RunningTether, upstream: RunningFake, workdir: Path, cloud: str, carrier: str
) -> None:
    agent = f"claude-{cloud}-{carrier}"
    key = clouds.create_agent(agent, "p")
    claude = claude_on(cloud, clouds, key, workdir)
    if carrier != "custom-header":
        del claude.env["ANTHROPIC_CUSTOM_HEADERS"]
    if carrier == "bearer-token":
        del claude.env["CLAUDE_CODE_SKIP_BEDROCK_AUTH"]
        claude.env["AWS_BEARER_TOKEN_BEDROCK"] = key
    if carrier == "auth-token":
        claude.env["ANTHROPIC_AUTH_TOKEN"] = key
    if carrier == "api-key-helper":
        claude.settings = {"apiKeyHelper": f"echo {key}"}
    run = claude.run("say hi", max_turns=2, timeout=120)
    assert run.returncode == 0, run.result
    assert run.result == "Hello from the fake upstream."
    calls = [e for e in audit(clouds, agent=agent) if e["action"] == "model:messages"]
    assert calls and all(e["result"] == "allow" and e["source"] == cloud for e in calls)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_claude_code_on_a_cloud_with_a_wrong_tether_key_is_refused_once_with_the_reason(
    clouds: RunningTether, upstream: RunningFake, workdir: Path, cloud: str
) -> None:
    claude = claude_on(cloud, clouds, "tth_not-a-key-tether-issued", workdir)
    run = claude.run("say hi", max_turns=2, timeout=120)
    assert run.returncode != 0
    assert "API Error: 401 the agent key is not valid" in run.result, run.result
    assert run.seconds < 60, "Claude Code kept retrying a refused key"
    assert cloud_calls(upstream, cloud) == 0
