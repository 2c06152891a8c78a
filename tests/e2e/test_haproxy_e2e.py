"""The shipped ``deploy/haproxy.cfg`` in front of two real ``tether up`` processes on one
PostgreSQL: sessions are sticky, so the repeat guard trips at the same call count as on
one replica; a kill issued on either replica holds; a shared budget is never overspent."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.replicas import Replicas, first_refusal, two_processes
from tests.e2e.test_tether_up import free_port
from tests.support.fake_upstream import RunningFake, start_fake
from tether.fakes.anthropic import FakeReply

HAPROXY_CFG = Path(__file__).parents[2] / "deploy" / "haproxy.cfg"
REPEAT_LIMIT = 3
_PROJECT_NUMBERS = itertools.count(1)


@dataclass
class Fleet:
    url: str
    """HAProxy's."""
    replicas: Replicas
    key: str
    project: str
    upstream: RunningFake


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "haproxy exited"
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "haproxy never forwarded /readyz"
        time.sleep(0.1)


@dataclass
class Balanced:
    url: str
    """HAProxy's."""
    replicas: Replicas
    upstream: RunningFake


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    """Two replicas behind HAProxy, started once for the module (each test has a project
    of its own)."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    upstream = start_fake()
    tmp_path = tmp_path_factory.mktemp("fleet")
    try:
        with two_processes(tmp_path, TETHER_ANTHROPIC_BASE_URL=upstream.url) as replicas:
            port = free_port()
            env = {
                "HAPROXY_BIND": f"127.0.0.1:{port}",
                "TETHER_1": replicas.first.removeprefix("http://"),
                "TETHER_2": replicas.second.removeprefix("http://"),
                "PATH": "/usr/sbin:/usr/bin:/bin",
            }
            check = subprocess.run(
                [haproxy, "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True
            )
            assert check.returncode == 0, check.stdout + check.stderr
            process = subprocess.Popen(
                [haproxy, "-db", "-f", str(HAPROXY_CFG)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_ready(url, process)
                yield Balanced(url, replicas, upstream)
            finally:
                process.terminate()
                process.wait(timeout=10)
    finally:
        upstream.stop()


@pytest.fixture
def fleet(balanced: Balanced) -> Iterator[Fleet]:
    """A project of this test's own on the shared fleet, its agent's key."""
    project = f"p{next(_PROJECT_NUMBERS)}"
    admin = balanced.replicas.admin
    admin.post("/projects", json={"name": project}).raise_for_status()
    admin.put(
        f"/projects/{project}/credentials/anthropic",
        json={"secret": balanced.upstream.fake.api_key},
    ).raise_for_status()
    admin.put(
        f"/projects/{project}/policy", json={"source": "permit(principal, action, resource);"}
    ).raise_for_status()
    admin.patch(
        f"/projects/{project}/guards", json={"repeat_limit": REPEAT_LIMIT}
    ).raise_for_status()
    key = admin.post("/agents", json={"name": f"a-{project}", "project": project}).json()["key"]
    balanced.upstream.fake.default = FakeReply()
    yield Fleet(balanced.url, balanced.replicas, key, project, balanced.upstream)


def _message(fleet: Fleet, session_header: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{fleet.url}/v1/messages",
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "the same question"}],
        },
        headers={"x-api-key": fleet.key, "anthropic-version": "2023-06-01", **session_header},
        timeout=30,
    )


def _statuses(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]


def test_the_repeat_guard_trips_at_the_same_call_as_on_one_replica(fleet: Fleet) -> None:
    tripped = [200] * REPEAT_LIMIT + [423]
    claude_code = [
        _message(fleet, {"X-Claude-Code-Session-Id": "cc-session"}) for _ in range(REPEAT_LIMIT + 1)
    ]
    assert _statuses(claude_code) == tripped, [r.text for r in claude_code]
    assert claude_code[-1].json()["error"]["message"]

    body: dict[str, Any] = {"session_id": "sdk-session", "action": "s3:GetObject"}
    body["resource"] = "arn:aws:s3:::b/k"
    other = [
        httpx.post(
            f"{fleet.url}/v1/authorize",
            json=body,
            headers={"x-api-key": fleet.key, "X-Tether-Session-Id": "sdk-session"},
        )
        for _ in range(REPEAT_LIMIT + 1)
    ]
    assert _statuses(other) == tripped
    assert other[-1].json()["error"]["code"] == "repeated_call"


@pytest.mark.parametrize("replica", ["first", "second"])
def test_a_kill_on_either_replica_holds_behind_the_balancer(fleet: Fleet, replica: str) -> None:
    session = f"killed-on-{replica}"
    headers = {"x-api-key": fleet.key, "X-Tether-Session-Id": session}
    body = {"session_id": session, "action": "s3:GetObject", "resource": "arn:aws:s3:::b/1"}
    assert httpx.post(f"{fleet.url}/v1/authorize", json=body, headers=headers).status_code == 200
    base = getattr(fleet.replicas, replica)
    killed = httpx.post(
        f"{base}/admin/v1/sessions/{session}/kill",
        json={"reason": "stop"},
        headers=fleet.replicas.admin.headers,
    )
    assert killed.status_code == 200, killed.text
    for n in range(2, 6):
        refused, _ = first_refusal(
            f"{fleet.url}/v1/authorize",
            {**body, "resource": f"arn:aws:s3:::b/{n}"},
            headers,
        )
        assert refused.status_code == 423
        assert refused.json()["error"]["code"] == "session_terminated"


def test_a_budget_shared_behind_the_balancer_is_never_overspent(
    fleet: Fleet,
) -> None:
    fleet.upstream.fake.default = FakeReply(output_tokens=5900, chunks=3, chunk_delay=0.01)
    limit = 0.6
    budget = fleet.replicas.admin.put(
        "/budgets", json={"project": fleet.project, "period": "daily", "limit_usd": limit}
    ).json()

    async def one(client: httpx.AsyncClient, n: int) -> tuple[int, str]:
        response = await client.post(
            f"{fleet.url}/v1/messages",
            json={
                "model": "claude-sonnet-5",
                "max_tokens": 6000,
                "messages": [{"role": "user", "content": f"task {n}"}],
            },
            headers={
                "x-api-key": fleet.key,
                "anthropic-version": "2023-06-01",
                "X-Claude-Code-Session-Id": f"budget-{n}",
            },
        )
        return response.status_code, response.text[:500]

    async def burst() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[one(client, n) for n in range(40)])

    answers = asyncio.run(burst())
    assert {status for status, _ in answers} == {200, 402}, [
        answer for answer in answers if answer[0] not in (200, 402)
    ]
    deadline = time.monotonic() + 5
    while True:
        budgets = fleet.replicas.admin.get("/budgets").json()
        state = next(b for b in budgets if b["id"] == budget["id"])
        if state["reserved_usd"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state["reserved_usd"] == 0
    assert 0 < state["spent_usd"] <= limit
