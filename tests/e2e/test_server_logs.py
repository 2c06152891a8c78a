"""``tether up`` with ``TETHER_LOG_FORMAT=json``: one JSON object per line on stderr, an
access line per request naming the agent and session (never a key), and the kills,
pauses, guard trips, budget stops and policy changes at INFO."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_tether_up import TETHER, cli, free_port
from tests.support.fake_upstream import RunningFake

ADMIN_TOKEN = "tta_logs-test-admin-token-0123456789"


@pytest.fixture
def logged(tmp_path: Path, upstream: RunningFake) -> Iterator[tuple[dict[str, str], Path]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_URL": f"http://127.0.0.1:{port}",
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_ANTHROPIC_BASE_URL": upstream.url,
        "TETHER_LOG_FORMAT": "json",
    }
    log_file = tmp_path / "stderr.log"
    with log_file.open("w") as stderr:
        process = subprocess.Popen(
            [*TETHER, "up", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_file.read_text()
            try:
                if httpx.get(f"{env['TETHER_URL']}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
        yield env, log_file
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_json_logs(logged: tuple[dict[str, str], Path], upstream: RunningFake) -> None:
    env, log_file = logged
    url = env["TETHER_URL"]
    _ok(cli(env, "projects", "create", "demo"))
    stored = subprocess.run(
        [*TETHER, "credentials", "set", "demo"],
        env=env,
        input=upstream.fake.api_key,
        capture_output=True,
        text=True,
        timeout=60,
    )
    _ok(stored)
    policy = log_file.parent / "all.cedar"
    policy.write_text("permit(principal, action, resource);\n")
    _ok(cli(env, "policy", "apply", str(policy), "-p", "demo"))
    key = json.loads(_ok(cli(env, "agents", "create", "a1", "--project", "demo", "--json")))["key"]
    _ok(cli(env, "guards", "set", "demo", "--repeat-limit", "2"))
    _ok(cli(env, "budgets", "set", "--project", "demo", "--session-limit", "0.000001"))

    body = {"session_id": "s-auth", "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"}
    answers = [
        httpx.post(f"{url}/v1/authorize", json=body, headers={"x-api-key": key}).status_code
        for _ in range(3)
    ]
    assert answers == [200, 200, 423]
    message = httpx.post(
        f"{url}/v1/messages",
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "x-tether-session-id": "s-m"},
    )
    assert message.status_code == 402, message.text
    _ok(cli(env, "sessions", "kill", "s-auth", "--reason", "log test"))
    _ok(cli(env, "projects", "pause", "demo", "--reason", "log test"))
    _ok(cli(env, "agents", "stop", "a1"))

    deadline = time.monotonic() + 10
    while "agent a1 stopped" not in log_file.read_text():
        assert time.monotonic() < deadline, log_file.read_text()
        time.sleep(0.1)
    text = log_file.read_text()
    assert key not in text and key[:12] not in text
    assert ADMIN_TOKEN not in text
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)

    access = [line for line in lines if line["logger"] == "tether.access"]
    authorize = [line for line in access if line["path"] == "/v1/authorize"]
    assert [line["status"] for line in authorize] == [200, 200, 423]
    assert all(line["agent"] == "a1" and line["session"] == "s-auth" for line in authorize)
    assert all(line["method"] == "POST" and line["duration_ms"] >= 0 for line in authorize)
    durations = [line["duration_ms"] for line in access]
    assert any(ms != int(ms) for ms in durations), (
        f"durations are timed finer than the event loop's whole milliseconds: {durations}"
    )
    model = next(line for line in access if line["path"] == "/v1/messages")
    assert (model["status"], model["agent"], model["session"]) == (402, "a1", "s-m")
    assert any(line["path"] == "/admin/v1/projects" for line in access)

    info = [line["message"] for line in lines if line["level"] == "INFO"]
    expected = [
        "policy v1 in force for project demo",
        "guard repeated_call tripped in session s-auth (agent a1)",
        "budget stop for agent a1",
        "session s-auth terminated by admin:",
        "project demo paused by admin:",
        "agent a1 stopped by admin:",
    ]
    for needle in expected:
        assert any(needle in message for message in info), (needle, info)


def test_a_stderr_nobody_reads_never_stops_tether(tmp_path: Path) -> None:
    """A log collector that stalls (a pipe nobody reads) used to block the event loop in a
    write after about 800 access lines: every request, a kill's included, then hung."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_LOG_BUFFER_BYTES": "4096",
    }
    process = subprocess.Popen(
        [*TETHER, "up", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "tether up exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "tether up never became ready"
            time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(1_500):  # about 140 KB of access lines: the pipe holds 64 KB
                assert client.get("/healthz").status_code == 200
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            created = client.post("/admin/v1/projects", json={"name": "p"}, headers=admin)
            assert created.status_code == 201, created.text
        assert process.stderr is not None
        logged = b""
        deadline = time.monotonic() + 20
        while b"log lines were dropped" not in logged:
            assert time.monotonic() < deadline, logged[-2000:]
            logged += os.read(process.stderr.fileno(), 1 << 16)
        text = logged.decode(errors="replace")
        assert "GET /healthz 200" in text
        dropped = int(text.split("log lines were dropped")[0].rsplit("tether: ", 1)[1].split()[0])
        assert 0 < dropped < 1_500
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
