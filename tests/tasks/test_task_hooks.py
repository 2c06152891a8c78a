"""Tasks through the real front doors: the admin API, the HTTP hooks, ``/v1/tasks``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.support.server import RunningTether
from tests.tasks.support import agent_call, create_task, hook, task_yaml
from tether.cli.main import app
from tether.tasks.block import BEGIN, END


def test_session_start_injects_the_task_and_the_latest_checkpoint(
    tether_any: RunningTether,
) -> None:
    tether = tether_any
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    task = create_task(tether, "p", task_yaml(), agent="worker")
    started = hook(tether, key, "SessionStart", "s-1", source="startup")
    context = started["hookSpecificOutput"]["additionalContext"]
    assert started["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert context.startswith(BEGIN) and context.endswith(END)
    assert "Move every customer record from schema v1 to schema v2." in context
    assert "- never delete a record" in context
    assert "Latest checkpoint: none yet" in context
    shown = tether.call("GET", f"/tasks/{task['id']}").json()
    assert shown["session_id"] == "s-1"

    written = agent_call(
        tether,
        key,
        "POST",
        f"/v1/tasks/{task['id']}/checkpoints",
        json={"done": "migrated rec-0000..0049", "next": "rec-0050 on", "decisions": ["keep ids"]},
    )
    assert written.status_code == 201, written.text
    compacted = hook(tether, key, "SessionStart", "s-1", source="compact")
    context = compacted["hookSpecificOutput"]["additionalContext"]
    assert "Done: migrated rec-0000..0049" in context and "Next: rec-0050 on" in context
    assert "- keep ids" in context
    assert len(context) <= 10_000

    shown = tether.call("GET", f"/tasks/{task['id']}").json()
    assert [c["done"] for c in shown["checkpoints"]] == ["migrated rec-0000..0049"]
    events = tether.call("GET", "/audit", params={"session": "s-1"}).json()
    assert any(e["action"] == "task:checkpoint" and e["agent"] == "worker" for e in events)


def test_a_session_without_a_task_gets_an_empty_answer(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("idle", "p")
    assert hook(tether, key, "SessionStart", "s-idle", source="startup") == {}
    assert hook(tether, key, "Stop", "s-idle") == {}


def test_a_task_for_another_agent_is_not_injected(tether: RunningTether) -> None:
    tether.create_project("p")
    tether.create_agent("owner", "p")
    other = tether.create_agent("other", "p")
    create_task(tether, "p", task_yaml(), agent="owner")
    assert hook(tether, other, "SessionStart", "s-other", source="startup") == {}


def test_a_bad_task_file_names_the_line_to_fix(tether: RunningTether) -> None:
    tether.create_project("p")
    source = "name: x\ngoal: y\nbatch_size: 0\nitems: [a]\nverfication:\n  command: x\n"
    response = tether.call("POST", "/tasks", json={"project": "p", "source": source})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "task_invalid"
    assert "line 3: batch_size" in error["message"]
    assert "line 5: verfication" in error["message"]
    broken = tether.call("POST", "/tasks", json={"project": "p", "source": "name: x\n goal: [\n"})
    assert broken.status_code == 422 and "line 2" in broken.json()["error"]["message"]


def test_every_n_tool_batches_the_task_comes_back(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    set_drift = tether.call("PATCH", "/projects/p/drift", json={"reinject_every_batches": 3})
    assert set_drift.status_code == 200, set_drift.text
    create_task(tether, "p", task_yaml(), agent="worker")
    hook(tether, key, "SessionStart", "s-b", source="startup")
    answers = [hook(tether, key, "PostToolBatch", "s-b") for _ in range(6)]
    injected = [bool(a.get("hookSpecificOutput", {}).get("additionalContext")) for a in answers]
    assert injected == [False, False, True, False, False, True]
    assert answers[2]["hookSpecificOutput"]["hookEventName"] == "PostToolBatch"


def test_a_killed_session_is_still_stopped_not_injected(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    create_task(tether, "p", task_yaml(), agent="worker")
    hook(tether, key, "SessionStart", "s-k", source="startup")
    killed = tether.call("POST", "/sessions/s-k/kill", json={"reason": "enough"})
    assert killed.status_code == 200, killed.text
    answer = hook(tether, key, "SessionStart", "s-k", source="compact")
    assert answer["continue"] is False and "enough" in answer["stopReason"]
    assert "hookSpecificOutput" not in answer


def test_the_documented_policy_line_permits_the_task_tools(tether: RunningTether) -> None:
    tether.create_project(
        "p",
        policy='permit(principal, action, resource) when { resource.arn like "mcp://tether/*" };\n',
    )
    key = tether.create_agent("worker", "p")
    asked = hook(
        tether,
        key,
        "PreToolUse",
        "s-p",
        tool_name="mcp__tether__next_batch",
        tool_input={},
        tool_use_id="tu-1",
    )
    assert asked["hookSpecificOutput"]["permissionDecision"] == "allow", asked
    other = hook(
        tether,
        key,
        "PreToolUse",
        "s-p",
        tool_name="mcp__other__drop",
        tool_input={},
        tool_use_id="tu-2",
    )
    assert other["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_audit_replay_lists_the_checkpoints(
    tether: RunningTether, monkeypatch: pytest.MonkeyPatch
) -> None:
    tether.create_project("p")
    key = tether.create_agent("worker", "p")
    task = create_task(tether, "p", task_yaml(), agent="worker", session="s-r")
    written = agent_call(
        tether, key, "POST", f"/v1/tasks/{task['id']}/checkpoints", json={"done": "step one"}
    )
    assert written.status_code == 201
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    replay = CliRunner().invoke(app, ["audit", "replay", "s-r", "--json"])
    assert replay.exit_code == 0, replay.output
    assert "task:checkpoint" in replay.output and "step one" in replay.output
