"""Task files and small helpers shared by the task tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.server import RunningTether


def task_yaml(items: int = 0, batch_size: int = 25, name: str = "migrate records") -> str:
    text = (
        f"name: {name}\n"
        "goal: Move every customer record from schema v1 to schema v2.\n"
        "constraints:\n"
        "  - never delete a record\n"
        "  - keep the v1 table until every batch is verified\n"
        "acceptance:\n"
        "  - every record validates against v2\n"
    )
    if items:
        text += (
            f"batch_size: {batch_size}\n"
            "verification:\n"
            "  command: python verify.py --batch {batch}\n"
            "items:\n" + "".join(f"  - rec-{n:04d}\n" for n in range(items))
        )
    return text


def create_task(
    tether: RunningTether, project: str, source: str, agent: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"project": project, "source": source, **extra}
    if agent is not None:
        body["agent"] = agent
    response = tether.call("POST", "/tasks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def hook(
    tether: RunningTether, key: str, event: str, session: str, **fields: Any
) -> dict[str, Any]:
    response = httpx.post(
        f"{tether.url}/hooks/claude-code",
        json={"session_id": session, "hook_event_name": event, "cwd": "/tmp", **fields},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def agent_call(
    tether: RunningTether, key: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{tether.url}{path}", headers=headers, timeout=30, **kwargs)
