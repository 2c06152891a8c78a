"""Every fire drill, run with the ``tether drill`` CLI, while a real Claude Code session (the
bundled ``claude`` binary, headless, hooks to tether) works in the same project: on SQLite,
and on two replicas sharing one PostgreSQL database (drills issued on the first, the canary
knocking on the second, where Claude Code works: a kill measured across replicas).

The scripted upstream answers every turn with another ``Bash`` call (its output grows, so
the loop guard sees progress). During each drill one of those turns is held in flight: its
stream is open through tether, so a drill that stopped, paused or cut more than its canary
would cut it. After each drill the turn is let go and the test waits until Claude Code has
run that tool call, through its hooks; after the last, the upstream answers with the final
text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.claude_code import ClaudeCode, hook_settings
from tests.support.drills import passed_but_for_time
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply
from tether.store.readiness import DRILL_CAUSED

TETHER = [sys.executable, "-m", "tether.cli"]
DRILLS = ("kill", "pause", "rotate", "audit")
FINAL = "The build is fixed; all drills left me alone."
TICK = {
    "command": "echo tick >> ran.log; wc -l < ran.log",
    "description": "one step of the work",
    "timeout": 600000,
}
GENEROUS = 240.0
"""Seconds to wait for a step of the real CLI on a loaded 2-core machine: never a target."""
REFUSAL_ACTION = re.compile(r"kill|pause|terminat|revoke|rotate", re.IGNORECASE)


@dataclass
class Deployment:
    control: RunningTether
    """Where the operator runs ``tether drill`` (its admin API)."""
    doors: RunningTether
    """Where Claude Code and the canary knock."""
    door_url: str | None
    """``--door-url`` for the drills (None: the control replica's own doors)."""


@pytest.fixture(params=["sqlite", "postgres-two-replicas"])
def deployment(request: pytest.FixtureRequest, upstream: RunningFake) -> Iterator[Deployment]:
    if request.param == "sqlite":
        gateway: RunningTether = request.getfixturevalue("gateway")
        yield Deployment(gateway, gateway, None)
        return
    first, second = request.getfixturevalue("replicas")
    first.create_project("p", upstream.fake.api_key)
    yield Deployment(first, second, second.url)


def _tether(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``tether`` CLI as an operator runs it, against the control replica."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")} | {
        "TETHER_URL": deployment.control.url,
        "TETHER_ADMIN_TOKEN": deployment.control.admin_token,
    }
    return subprocess.run(
        [*TETHER, *args], env=env, capture_output=True, text=True, timeout=GENEROUS
    )


def _drill(deployment: Deployment, kind: str) -> dict[str, Any]:
    """``tether drill KIND -p p --json`` (the canary knocking on ``door_url`` when given)."""
    args = ["drill", kind, "-p", "p", "--json"]
    if deployment.door_url is not None:
        args += ["--door-url", deployment.door_url]
    ran = _tether(deployment, *args)
    assert ran.returncode in (0, 1), f"drill {kind}: {ran.stdout}{ran.stderr}"
    report: dict[str, Any] = json.loads(ran.stdout)
    assert passed_but_for_time(kind, report), f"drill {kind}: {ran.stdout}"
    return report


def _ticks(workdir: Path) -> int:
    log = workdir / "ran.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _alive(process: subprocess.Popen[str]) -> None:
    """Claude Code is still at work (else why it stopped)."""
    if process.poll() is not None:
        stdout, stderr = process.communicate()
        raise AssertionError(f"claude exited early: {stdout[-3000:]} {stderr[-2000:]}")


def _wait_for_held_turn(process: subprocess.Popen[str], upstream: RunningFake) -> None:
    """Wait until Claude Code's next turn is in flight, held at the upstream."""
    deadline = time.monotonic() + GENEROUS
    while upstream.fake.holding < 1:
        _alive(process)
        assert time.monotonic() < deadline, "claude never asked for its next turn"
        time.sleep(0.05)


def _wait_for_tick(process: subprocess.Popen[str], workdir: Path, past: int) -> int:
    """Wait until Claude Code finished a tool call beyond the first ``past``. Looked for
    often: its turns run on until the next one is held, and each tick writes the same file,
    which the project's repeat guard allows 20 times in 300 s (four ticks a drill, at a
    look every 0.2 s, reached it)."""
    deadline = time.monotonic() + GENEROUS
    while _ticks(workdir) <= past:
        _alive(process)
        assert time.monotonic() < deadline, "claude made no progress"
        time.sleep(0.01)
    return _ticks(workdir)


def _refusals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["result"] == "deny"
        or e.get("code") in DRILL_CAUSED
        or REFUSAL_ACTION.search(e["action"])
    ]


def test_every_drill_leaves_a_working_claude_code_session_alone(
    deployment: Deployment, upstream: RunningFake, tmp_path: Path
) -> None:
    control, doors = deployment.control, deployment.doors
    key = control.create_agent("claude-real", "p")
    workdir = tmp_path / "repo"
    workdir.mkdir()
    release = threading.Event()
    release.set()
    upstream.fake.default = FakeReply(
        kind="tool_use", tool_name="Bash", tool_input=TICK, hold=release
    )
    claude = ClaudeCode(doors, key, workdir, hook_settings(doors))
    started = time.monotonic()
    process, session = claude.start(max_turns=10_000)
    reports: dict[str, dict[str, Any]] = {}
    try:
        ticks = _wait_for_tick(process, workdir, 0)
        for kind in DRILLS:
            release.clear()
            _wait_for_held_turn(process, upstream)
            reports[kind] = _drill(deployment, kind)
            assert upstream.fake.holding == 1 and upstream.fake.abandoned == 0, (
                f"the drill {kind} cut the real session's turn in flight"
            )
            release.set()
            ticks = _wait_for_tick(process, workdir, ticks)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    finally:
        upstream.fake.default = FakeReply(kind="text", text=FINAL)
        release.set()
    run = ClaudeCode.finish(process, session, started, timeout=GENEROUS)
    print({kind: (r["seconds"], r["timings"]) for kind, r in reports.items()})

    for report in reports.values():
        assert report["timings"] and all(t >= 0 for t in report["timings"].values()), report
    assert {"model_refused", "hook_refused"} <= set(reports["kill"]["timings"])
    assert {"model_refused", "hook_refused", "resumed"} <= set(reports["pause"]["timings"])
    assert "old_key_refused" in reports["rotate"]["timings"]
    assert "claude-real" in " ".join(reports["audit"]["notes"]), reports["audit"]

    assert run.returncode == 0, run.output
    assert run.result == FINAL, run.output
    assert _ticks(workdir) >= len(DRILLS) + 1
    assert upstream.fake.abandoned == 0

    session_trail = control.call("GET", "/audit", params={"session": session, "limit": 5000}).json()
    agent_trail = control.call(
        "GET", "/audit", params={"agent": "claude-real", "limit": 5000}
    ).json()
    hooked = [e for e in session_trail if e["source"] == "claude_code_hook"]
    assert len(hooked) >= len(DRILLS) + 1, session_trail
    refusals = _refusals(session_trail) + _refusals(agent_trail)
    assert refusals == [], refusals
    state = control.call("GET", f"/sessions/{session}").json()
    assert state["state"] == "active", state
    agent = control.call("GET", "/agents/claude-real").json()
    assert agent["state"] == "active", agent

    checked = _tether(deployment, "check", "-p", "p", "--json")
    assert checked.returncode in (0, 1), checked.stderr
    [readiness] = json.loads(checked.stdout)
    drill_checks = {c["check"]: c["status"] for c in readiness["checks"] if "drill" in c["check"]}
    assert drill_checks == {"drill_kill": "pass", "drill_pause": "pass"}, readiness

    drilled = control.call("GET", "/audit", params={"action": "drill:", "limit": 100}).json()
    assert sorted(e["action"] for e in drilled if e["result"] == "ok") == sorted(
        f"drill:{kind}" for kind in DRILLS
    ), drilled
