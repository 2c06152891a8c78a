"""The quickstart as a user runs it: ``tether up`` in a process, the ``tether`` CLI in others."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import free_port

TETHER = [sys.executable, "-m", "tether.cli"]


def start(env: dict[str, str], port: int, *options: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [*TETHER, "up", "--port", str(port), *options],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 90  # a loaded 2-core machine: imports alone take ~6 s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "ANTHROPIC_API_KEY" in line:
            return process, lines
    process.kill()
    process.wait()
    process.stdout.close()
    raise AssertionError("tether up did not start:\n" + "\n".join(lines))


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=15)
    if process.stdout is not None:
        process.stdout.close()
    return code


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETHER, *args], env=env, capture_output=True, text=True, timeout=60)


def test_quickstart_up_cli_authorize_restart(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_URL": f"http://127.0.0.1:{port}",
    }
    process, lines = start(env, port)
    try:
        output = "\n".join(lines)
        assert f"listening on http://127.0.0.1:{port}" in output
        token = next(line for line in lines if line.startswith("tta_"))
        token_file = tmp_path / "data" / "admin.token"
        assert token_file.read_text().strip() == token
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert "ANTHROPIC_BASE_URL" in output

        assert cli(env, "projects", "create", "demo").returncode == 0
        policy = tmp_path / "demo.cedar"
        policy.write_text('permit(principal, action == Action::"tool:Bash", resource);\n')
        applied = cli(env, "policy", "apply", str(policy), "--project", "demo")
        assert applied.returncode == 0, applied.stderr
        assert "policy v1 in force" in applied.stdout
        created = cli(env, "agents", "create", "agent-01", "--project", "demo", "--json")
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["key"]
        decision = httpx.post(
            f"http://127.0.0.1:{port}/v1/authorize",
            json={"action": "tool:Bash", "resource": "ls"},
            headers={"x-api-key": key},
        )
        assert decision.status_code == 200
    finally:
        assert stop(process) == 0

    process, lines = start(env, port)
    try:
        assert not any(line.startswith("tta_") for line in lines), "token is shown only once"
        assert "admin token: in" in "\n".join(lines)
        listed = cli(env, "agents", "list", "--json")
        assert [a["name"] for a in json.loads(listed.stdout)] == ["agent-01"]
        again = httpx.post(
            f"http://127.0.0.1:{port}/v1/authorize",
            json={"action": "tool:Bash", "resource": "ls"},
            headers={"x-api-key": key},
        )
        assert again.status_code == 200
    finally:
        assert stop(process) == 0


def test_the_connection_cap_answers_503_on_the_servers_own_event_loop(tmp_path: Path) -> None:
    """`tether up` runs on uvloop, whose transports are not asyncio's: the refusal must
    still be written (it was an AssertionError in the loop and a silent socket)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_MAX_CONNECTIONS": "2",
    }
    process, _ = start(env, port)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            extra.settimeout(10)
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"too_many_connections" in answer
    finally:
        for sock in held:
            sock.close()
        assert stop(process) == 0


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "TETHER_DATA_DIR": str(tmp_path / "data")}
        result = subprocess.run(
            [*TETHER, "up", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def _fresh_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_URL": f"http://127.0.0.1:{port}",
    }


def test_a_first_start_that_cannot_listen_does_not_lock_the_user_out(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        failed = cli(_fresh_env(tmp_path, taken), "up", "--port", str(taken))
    assert failed.returncode == 2, failed.stderr
    assert (tmp_path / "data").exists(), "the failed start got as far as the data dir"

    port = free_port()
    env = _fresh_env(tmp_path, port)
    process, lines = start(env, port)
    try:
        token = next((line for line in lines if line.startswith("tta_")), None)
        assert token is not None, "\n".join(lines)
        assert (tmp_path / "data" / "admin.token").read_text().strip() == token
        listed = cli(env, "projects", "list", "--json")
        assert listed.returncode == 0, listed.stderr
    finally:
        assert stop(process) == 0


def test_the_banner_hints_run_as_printed_and_never_wrap(tmp_path: Path) -> None:
    port = free_port()
    for launcher, command in (({"UV": "/usr/bin/uv"}, "uv run tether"), ({}, "tether")):
        env = {k: v for k, v in _fresh_env(tmp_path, port).items() if k != "UV"} | launcher
        process, lines = start(env, port)
        try:
            hint = f"next: {command} projects create demo && {command} agents create agent-01"
            assert any(line.startswith(hint) for line in lines), lines
            assert any(line.endswith("--project demo") for line in lines), lines
        finally:
            assert stop(process) == 0


def test_admin_reset_token_recovers_a_lost_token(tmp_path: Path) -> None:
    port = free_port()
    env = _fresh_env(tmp_path, port)
    process, _lines = start(env, port)
    token_file = tmp_path / "data" / "admin.token"
    try:
        old = token_file.read_text().strip()
        token_file.unlink()
        lost = cli(env, "projects", "list")
        assert lost.returncode == 1 and "no admin token" in lost.stderr

        reset = cli(env, "admin", "reset-token")
        assert reset.returncode == 0, reset.stderr
        new = reset.stdout.strip()
        assert new.startswith("tta_") and new != old
        assert token_file.read_text().strip() == new
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert "shown once" in reset.stderr

        listed = cli(env, "projects", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        audited = cli(env, "audit", "query", "--action", "admin:tokens.reset", "--json")
        assert audited.returncode == 0, audited.stderr
        [event] = json.loads(audited.stdout)
        assert event["actor"].startswith("local:")
        assert event["resource"].startswith("admin_tokens/reset-")
        verified = cli(env, "audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        assert stop(process) == 0


def test_admin_reset_token_on_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        **_fresh_env(tmp_path, free_port()),
        "TETHER_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
    }
    result = cli(env, "admin", "reset-token")
    assert result.returncode == 2
    assert "cannot open the database at" in result.stderr
    assert "Traceback" not in result.stderr
