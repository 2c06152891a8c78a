"""Two real ``tether up`` processes on one PostgreSQL database: a policy applied through
one is in force on the other within a second, and an approval decided on one wakes a
request long-polling on the other."""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.test_tether_up import free_port, start, stop
from tests.support.databases import postgres_database

ADMIN = "tta_e2e_policy_admin_token_0123456789"
PERMIT_DEV = (
    'permit(principal, action in Action::"s3:*", resource)'
    ' when { resource.arn like "arn:aws:s3:::dev-*" };'
)
FORBID_ALL = "forbid(principal, action, resource);"


def wait_until_allowed(url: str, body: dict[str, str], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 5
    while httpx.post(url, json=body, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "the policy never reached the second process"
        time.sleep(0.05)


def test_policy_and_approvals_cross_processes(tmp_path: Path) -> None:
    master_key = base64.b64encode(os.urandom(32)).decode()
    with postgres_database() as url:
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "TETHER_DATABASE_URL": url,
            "TETHER_MASTER_KEY": master_key,
            "TETHER_ADMIN_TOKEN": ADMIN,
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
            admin.put("/projects/p/policy", json={"source": PERMIT_DEV}).raise_for_status()
            key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
            on_second = f"http://127.0.0.1:{ports[1]}/v1/authorize"
            headers = {"Authorization": f"Bearer {key}"}
            read = {"session_id": "s", "action": "s3:GetObject", "resource": "arn:aws:s3:::dev-a"}

            wait_until_allowed(on_second, read, headers)

            admin.put("/projects/p/policy", json={"source": FORBID_ALL}).raise_for_status()
            applied_at = time.monotonic()
            while True:
                response = httpx.post(on_second, json=read, headers=headers)
                if response.status_code != 200 or time.monotonic() - applied_at > 1.0:
                    break
                time.sleep(0.02)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "policy_denied"
            assert time.monotonic() - applied_at <= 1.0

            admin.put("/projects/p/policy", json={"source": PERMIT_DEV}).raise_for_status()
            wait_until_allowed(on_second, read, headers)
            delete = {**read, "action": "s3:DeleteBucket", "wait_seconds": 20}
            answers: list[httpx.Response] = []
            waiting = threading.Thread(
                target=lambda: answers.append(
                    httpx.post(on_second, json=delete, headers=headers, timeout=30)
                )
            )
            waiting.start()
            deadline = time.monotonic() + 5
            while not (pending := admin.get("/approvals", params={"state": "pending"}).json()):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            admin.post(f"/approvals/{pending[0]['id']}/approve", json={}).raise_for_status()
            approved_at = time.monotonic()
            waiting.join(25)
            assert answers and answers[0].status_code == 200, answers
            assert time.monotonic() - approved_at < 2.0
            admin.close()
        finally:
            assert stop(first) == 0
            assert stop(second) == 0
