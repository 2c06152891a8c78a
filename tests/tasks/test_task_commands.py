"""``tether tasks`` and ``tether hook session-start`` as users run them: the CLI against a
real server, the command hook as a subprocess fed the hook JSON on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.server import RunningTether
from tests.tasks.support import agent_call, task_yaml
from tether.cli.main import app
from tether.tasks.block import BEGIN


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def session_start(url: str, key: str | None, event: dict[str, object]) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TETHER_", "ANTHROPIC_"))}
    env["TETHER_URL"] = url
    if key is not None:
        env["TETHER_KEY"] = key
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "hook", "session-start"],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_create_show_cancel_resume_from_the_cli(cli, tether: RunningTether, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    file = tmp_path / "task.yaml"
    file.write_text(task_yaml(items=50, batch_size=25))
    created = cli("tasks", "create", str(file), "-p", "p", "--agent", "worker", "--json")
    assert created.exit_code == 0, created.output
    task = json.loads(created.output)
    assert task["state"] == "active" and task["batches"] == 2 and task["agent"] == "worker"
    written = agent_call(
        tether,
        key,
        "POST",
        f"/v1/tasks/{task['id']}/checkpoints",
        json={"done": "schema v2 created", "next": "batch 0"},
    )
    assert written.status_code == 201, written.text
    shown = cli("tasks", "show", task["id"])
    assert shown.exit_code == 0, shown.output
    assert "schema v2 created" in shown.output and "0 of 2 batches verified" in shown.output
    listed = cli("tasks", "list", "-p", "p", "--json")
    assert [t["id"] for t in json.loads(listed.output)] == [task["id"]]
    assert cli("tasks", "cancel", task["id"], "-r", "wrong file").exit_code == 0
    refused = agent_call(tether, key, "POST", f"/v1/tasks/{task['id']}/batches/next")
    assert refused.status_code == 409 and "cancelled" in refused.json()["error"]["message"]
    assert cli("tasks", "resume", task["id"]).exit_code == 0
    again = agent_call(tether, key, "POST", f"/v1/tasks/{task['id']}/batches/next")
    assert again.status_code == 200 and again.json()["batch"] == 0


def test_a_bad_file_is_reported_with_its_line(cli, tether: RunningTether, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    file = tmp_path / "task.yaml"
    file.write_text("name: x\ngoal: y\nconstraints: nope\n")
    result = cli("tasks", "create", str(file), "-p", "p")
    assert result.exit_code != 0
    assert "line 3: constraints" in result.output and str(file) in result.output


def test_the_session_start_command_prints_the_task_block(
    tether: RunningTether, tmp_path: Path
) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    created = tether.call(
        "POST", "/tasks", json={"project": "p", "agent": "worker", "source": task_yaml()}
    )
    assert created.status_code == 201
    event = {"session_id": "s-cmd", "hook_event_name": "SessionStart", "source": "compact"}
    answer = session_start(tether.url, key, event)
    output = answer["hookSpecificOutput"]
    assert isinstance(output, dict)
    assert output["hookEventName"] == "SessionStart"
    assert str(output["additionalContext"]).startswith(BEGIN)


def test_the_session_start_command_fails_closed(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    event = {"session_id": "s-x", "hook_event_name": "SessionStart", "source": "startup"}
    unreachable = session_start("http://127.0.0.1:9", key, event)
    assert unreachable["continue"] is False
    assert "cannot reach tether at http://127.0.0.1:9" in str(unreachable["stopReason"])
    bad_key = session_start(tether.url, "tth_not-a-key", event)
    assert bad_key["continue"] is False and "not valid" in str(bad_key["stopReason"])
    no_key = session_start(tether.url, None, event)
    assert no_key["continue"] is False and "TETHER_KEY" in str(no_key["stopReason"])


def test_drift_settings_from_the_cli(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    changed = cli(
        "drift",
        "set",
        "p",
        "--reinject-every-batches",
        "5",
        "--session-minutes",
        "off",
        "--system-prompt",
        "--json",
    )
    assert changed.exit_code == 0, changed.output
    settings = json.loads(changed.output)
    assert settings["reinject_every_batches"] == 5 and settings["session_minutes"] is None
    assert settings["system_prompt"] is True and settings["context_fill_percent"] == 80
    bad = cli("drift", "set", "p", "--context-fill-percent", "lots")
    assert bad.exit_code != 0 and "whole number or 'off'" in bad.output
