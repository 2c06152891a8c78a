"""Drills run while a real Claude Code session works in the same project: it keeps
working, and nothing in its audit trail is a refusal."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.claude_code import ClaudeCode, hook_settings
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply


def test_kill_and_pause_drills_leave_a_running_claude_code_session_alone(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    workdir = tmp_path / "repo"
    workdir.mkdir()
    key = gateway.create_agent("claude-real", "p")
    upstream.fake.enqueue(
        FakeReply(
            kind="tool_use",
            tool_name="Bash",
            tool_input={"command": "sleep 2; echo first >> ran.log", "description": "long"},
        )
    )
    upstream.fake.enqueue(
        FakeReply(
            kind="tool_use",
            tool_name="Bash",
            tool_input={"command": "echo second >> ran.log", "description": "after the drills"},
        )
    )
    upstream.fake.default = FakeReply(kind="text", text="all done")
    claude = ClaudeCode(gateway, key, workdir, hook_settings(gateway))
    started = time.monotonic()
    process, session = claude.start()
    deadline = time.monotonic() + 60
    while not [
        e
        for e in gateway.call("GET", "/audit", params={"session": session}).json()
        if e["source"] == "claude_code_hook"
    ]:
        assert time.monotonic() < deadline and process.poll() is None, "the tool never started"
        time.sleep(0.1)
    reports = [
        gateway.call("POST", f"/projects/p/drills/{kind}").json() for kind in ("kill", "pause")
    ]
    run = ClaudeCode.finish(process, session, started)
    assert all(r["ok"] for r in reports), reports
    assert run.returncode == 0, run.output
    assert (workdir / "ran.log").read_text() == "first\nsecond\n"
    trail = gateway.call("GET", "/audit", params={"session": session, "limit": 500}).json()
    assert trail and not [e for e in trail if e["result"] == "deny"], trail
    print([r["timings"] for r in reports])
