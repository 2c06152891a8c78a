"""The real Claude Code CLI, headless, with the SessionStart command hook the README gives:
the task block tether holds reaches the model (the fake upstream records each request)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from tests.support.claude_code import ClaudeCode, hook_settings
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.tasks.support import create_task, task_yaml
from tether.tasks.block import BEGIN


def test_the_task_reaches_the_model_through_the_session_start_command_hook(
    gateway: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    key = gateway.create_agent("claude-task", "p")
    task = create_task(gateway, "p", task_yaml(), agent="claude-task")
    settings = hook_settings(gateway, ("PreToolUse", "PostToolUse", "Stop"))
    command = f"{shlex.quote(sys.executable)} -m tether.cli hook session-start"
    settings["hooks"]["SessionStart"] = [
        {"hooks": [{"type": "command", "command": command, "timeout": 30}]}
    ]
    workdir = tmp_path / "repo"
    workdir.mkdir()
    run = ClaudeCode(gateway, key, workdir, settings).run("continue the migration")
    assert run.returncode == 0, (run.output, run.stderr[-2000:])
    sent = [json.dumps(r.body) for r in upstream.fake.received if r.path == "/v1/messages"]
    carrying = [body for body in sent if f"{BEGIN} id={task['id']}" in body]
    assert carrying, "no request to the model carried the task block"
    assert "Move every customer record from schema v1 to schema v2." in carrying[-1]
    shown = gateway.call("GET", f"/tasks/{task['id']}").json()
    assert shown["session_id"] == run.session_id
