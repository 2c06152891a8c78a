"""Two real ``tether up`` processes on one PostgreSQL database: a kill issued through one
is enforced by the other within a second."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.replicas import first_refusal, two_processes
from tests.support.fake_upstream import RunningFake


def test_session_kill_crosses_processes(tmp_path: Path, upstream: RunningFake) -> None:
    with two_processes(tmp_path, TETHER_ANTHROPIC_BASE_URL=upstream.url) as replicas:
        admin = replicas.admin
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
        on_second = f"{replicas.second}/v1/messages"
        assert httpx.post(on_second, json=body, headers=headers).status_code == 200

        admin.post("/sessions/shared/kill", json={"reason": "e2e"}).raise_for_status()
        response, elapsed = first_refusal(on_second, body, headers)
        assert response.status_code == 423
        assert response.json()["error"]["type"] == "permission_error"
        assert elapsed <= 1.0
