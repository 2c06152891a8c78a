"""A kill drill on a fleet as deployed: two ``tether up`` processes on one PostgreSQL
database. The kill is issued through the first and measured at the second's doors; a real
agent working through the second is not disturbed (no refusal in its audit)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO

import httpx

from tests.e2e.test_fleet_start import _env
from tests.e2e.test_tether_up import cli, free_port, start, stop
from tests.support.databases import postgres_database
from tests.support.drills import passed_but_for_time

TOKEN = "tta_drill-replicas-0123456789abcdef"


def _drain(output: IO[str] | None) -> None:
    """Read the server's output as it comes, so a full pipe never blocks it."""
    assert output is not None
    threading.Thread(target=output.read, daemon=True).start()


def _prompt(url: str, key: str) -> dict[str, object]:
    answer = httpx.post(
        f"{url}/hooks/claude-code",
        json={"session_id": "real-1", "hook_event_name": "UserPromptSubmit", "prompt": "go"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_kill_drill_across_two_tether_up_processes(tmp_path: Path) -> None:
    with postgres_database() as url:
        plain_url = url.replace("postgresql+asyncpg://", "postgres://")
        ports = [free_port(), free_port()]
        envs = [
            _env(tmp_path / f"r{i}", port, TETHER_DATABASE_URL=plain_url, TETHER_ADMIN_TOKEN=TOKEN)
            for i, port in enumerate(ports)
        ]
        assert cli(envs[0], "migrate").returncode == 0
        processes = []
        try:
            for env, port in zip(envs, ports, strict=True):
                process, _lines = start(env, port, "--no-migrate")
                processes.append(process)
                _drain(process.stdout)
            first = envs[0]
            second_url = f"http://127.0.0.1:{ports[1]}"
            assert cli(first, "projects", "create", "p").returncode == 0
            policy = tmp_path / "policy.cedar"
            policy.write_text("permit(principal, action, resource);\n")
            assert cli(first, "policy", "apply", str(policy), "-p", "p").returncode == 0
            created = cli(first, "agents", "create", "real", "-p", "p", "--json")
            key = json.loads(created.stdout)["key"]
            assert _prompt(second_url, key).get("continue", True) is not False

            ran = cli(first, "drill", "kill", "-p", "p", "--door-url", second_url, "--json")
            assert ran.returncode in (0, 1), ran.stdout + ran.stderr
            report = json.loads(ran.stdout)
            assert passed_but_for_time("kill", report), report
            assert set(report["timings"]) >= {"model_refused", "hook_refused"}
            print(report)

            assert _prompt(second_url, key).get("continue", True) is not False
            trail = cli(first, "audit", "query", "--agent", "real", "--json")
            assert trail.returncode == 0, trail.stderr
            events = json.loads(trail.stdout)
            assert events and [e for e in events if e["result"] == "deny"] == []
        finally:
            for process in processes:
                assert stop(process) == 0
