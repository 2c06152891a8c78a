"""Two real ``tether up`` processes on one PostgreSQL database: a policy applied through
one is in force on the other within a second, and an approval decided on one wakes a
request long-polling on the other."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.e2e.replicas import first_refusal, two_processes

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
    with two_processes(tmp_path) as replicas:
        admin = replicas.admin
        admin.post("/projects", json={"name": "p"}).raise_for_status()
        admin.put("/projects/p/policy", json={"source": PERMIT_DEV}).raise_for_status()
        key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
        on_second = f"{replicas.second}/v1/authorize"
        headers = {"Authorization": f"Bearer {key}"}
        read = {"session_id": "s", "action": "s3:GetObject", "resource": "arn:aws:s3:::dev-a"}
        wait_until_allowed(on_second, read, headers)

        admin.put("/projects/p/policy", json={"source": FORBID_ALL}).raise_for_status()
        response, elapsed = first_refusal(on_second, read, headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "policy_denied"
        assert elapsed <= 1.0

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
