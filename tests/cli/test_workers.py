"""``tether up --workers 2`` as an operator runs it: two processes on one port, one
PostgreSQL database and one Redis; a kill issued through either is refused by both, a
loop trips at the same call as on one process, and what cannot be shared is refused."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_tether_up import cli, free_port, start
from tests.support.databases import REDIS_URL, postgres_database
from tests.support.processes import (
    catches,
    children,
    described,
    kill_if_alive,
    wait_until_gone,
)
from tests.support.server import PERMIT_ALL


def _env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_URL": f"http://127.0.0.1:{port}",
        **extra,
    }


def authorize(url: str, key: str, session: str, resource: str) -> httpx.Response:
    """On a new connection each time, so the kernel may hand it to either worker."""
    body = {"session_id": session, "action": "s3:GetObject", "resource": resource}
    return httpx.post(f"{url}/v1/authorize", json=body, headers={"x-api-key": key}, timeout=10)


def _fleet_env(tmp_path: Path, port: int, db_url: str) -> dict[str, str]:
    """What a fleet needs: PostgreSQL, and Redis under a prefix of this test's own."""
    return _env(
        tmp_path,
        port,
        TETHER_DATABASE_URL=db_url,
        TETHER_REDIS_URL=REDIS_URL,
        TETHER_REDIS_PREFIX=f"test-{uuid.uuid4().hex}:",
    )


def test_two_workers_share_the_port_a_kill_and_the_guards(tmp_path: Path) -> None:
    with postgres_database() as db_url:
        port = free_port()
        env = _fleet_env(tmp_path, port, db_url)
        process, lines = start(env, port, "--workers", "2")
        try:
            assert sum(line.startswith("tta_") for line in lines) == 1, "one token, printed once"
            url = env["TETHER_URL"]
            token = (tmp_path / "data" / "admin.token").read_text().strip()
            admin = httpx.Client(
                base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {token}"}
            )
            assert admin.post("/projects", json={"name": "p"}).status_code == 201
            assert admin.put("/projects/p/policy", json={"source": PERMIT_ALL}).is_success
            assert admin.patch("/projects/p/guards", json={"repeat_limit": 3}).is_success
            key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
            admin.close()

            codes = [authorize(url, key, "loop", "arn:aws:s3:::b/k").status_code for _ in range(5)]
            assert codes == [200, 200, 200, 423, 423], "trips at the 4th, as on one process"

            assert authorize(url, key, "doomed", "arn:aws:s3:::b/x").status_code == 200
            killed = cli(env, "sessions", "kill", "doomed", "--reason", "test")
            assert killed.returncode == 0, killed.stderr
            deadline = time.monotonic() + 5
            polls = 1
            while authorize(url, key, "doomed", "arn:aws:s3:::b/y").status_code != 423:
                assert time.monotonic() < deadline, "the kill was never enforced"
                polls += 1
            time.sleep(0.5)
            answers = [authorize(url, key, "doomed", f"arn:aws:s3:::b/{n}") for n in range(12)]
            assert {a.json()["error"]["code"] for a in answers} == {"session_terminated"}
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
            assert process.returncode == 0, output
    authorized = [line for line in output.splitlines() if "POST /v1/authorize" in line]
    sent = 5 + 1 + polls + 12
    assert len(authorized) == sent, "every worker's access lines reach stderr: " + output[-2000:]


def test_workers_refuse_sqlite_and_a_fleet_without_redis(tmp_path: Path) -> None:
    port = free_port()
    on_sqlite = cli(_env(tmp_path, port), "up", "--port", str(port), "--workers", "2")
    assert on_sqlite.returncode == 2
    assert "needs PostgreSQL" in on_sqlite.stderr and "Traceback" not in on_sqlite.stderr
    postgres = "postgresql://postgres@127.0.0.1/unused"
    no_redis = cli(_env(tmp_path, port, TETHER_DATABASE_URL=postgres), "up", "--workers", "2")
    assert no_redis.returncode == 2 and "needs TETHER_REDIS_URL" in no_redis.stderr


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL, out of memory) leaves no worker serving the
    port, nor any worker's own children: a restarted supervisor would otherwise run its
    workers beside the old ones."""
    with postgres_database() as db_url:
        port = free_port()
        env = _fleet_env(tmp_path, port, db_url)
        process, _ = start(env, port, "--workers", "2")
        stdout = process.stdout
        assert stdout is not None
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.append(stdout.read()))
        reader.start()  # as a service manager would: a full pipe would hold the workers
        descendants: list[int] = []
        try:
            workers = children(process.pid)
            assert len(workers) == 2, described(workers)
            deadline = time.monotonic() + 60
            while not all(catches(w, signal.SIGTERM) and children(w) for w in workers):
                assert time.monotonic() < deadline, f"not serving yet: {described(workers)}"
                time.sleep(0.1)
            descendants = [*workers, *(c for w in workers for c in children(w))]
            process.kill()
            process.wait()
            wait_until_gone(descendants, 30, "their supervisor")
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{env['TETHER_URL']}/healthz", timeout=5)
            reader.join(15)
            assert not reader.is_alive(), "something still holds the server's output open"
            assert output[0].count("tether: shutting down") == 2, output[0][-2000:]
        finally:
            process.kill()
            process.wait()
            for pid in descendants:
                kill_if_alive(pid, "multiprocessing")
                kill_if_alive(pid, "tether.cli")
            reader.join(15)
            stdout.close()
