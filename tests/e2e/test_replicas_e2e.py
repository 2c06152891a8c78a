"""Two real ``tether up`` processes on one PostgreSQL database: a kill issued through one
is enforced by the other within a second."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import httpx

from tests.e2e.test_tether_up import free_port, start, stop
from tests.support.databases import postgres_database
from tests.support.fake_upstream import RunningFake

ADMIN = "tta_e2e_replica_admin_token_0123456789"


def test_session_kill_crosses_processes(tmp_path: Path, upstream: RunningFake) -> None:
    master_key = base64.b64encode(os.urandom(32)).decode()
    with postgres_database() as url:
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "TETHER_DATABASE_URL": url,
            "TETHER_MASTER_KEY": master_key,
            "TETHER_ADMIN_TOKEN": ADMIN,
            "TETHER_ANTHROPIC_BASE_URL": upstream.url,
        }
        ports = [free_port(), free_port()]
        first, _ = start({**base_env, "TETHER_DATA_DIR": str(tmp_path / "a")}, ports[0])
        second, _ = start({**base_env, "TETHER_DATA_DIR": str(tmp_path / "b")}, ports[1])
        try:
            admin = httpx.Client(
                base_url=f"http://127.0.0.1:{ports[0]}/admin/v1",
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            admin.post("/projects", json={"name": "p"}).raise_for_status()
            admin.put(
                "/projects/p/credentials/anthropic", json={"secret": upstream.fake.api_key}
            ).raise_for_status()
            key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
            body = {
                "model": "claude-sonnet-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
            }
            headers = {
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Claude-Code-Session-Id": "shared",
            }
            on_second = f"http://127.0.0.1:{ports[1]}/v1/messages"
            assert httpx.post(on_second, json=body, headers=headers).status_code == 200

            admin.post("/sessions/shared/kill", json={"reason": "e2e"}).raise_for_status()
            killed_at = time.monotonic()
            while True:
                response = httpx.post(on_second, json=body, headers=headers)
                if response.status_code != 200 or time.monotonic() - killed_at > 1.0:
                    break
                time.sleep(0.02)
            assert response.status_code == 403
            assert response.json()["error"]["type"] == "permission_error"
            assert time.monotonic() - killed_at <= 1.0
            admin.close()
        finally:
            assert stop(first) == 0
            assert stop(second) == 0
