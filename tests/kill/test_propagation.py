"""Two tether processes on one PostgreSQL: a kill issued on one is enforced by the other
within a second, running streams included."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.streams import MODEL, read_stream
from tether.fakes.anthropic import FakeReply


def test_kill_on_one_replica_cuts_a_stream_on_the_other(
    replicas: tuple[RunningTether, RunningTether], upstream: RunningFake
) -> None:
    first, second = replicas
    first.create_project("p", upstream.fake.api_key)
    key = first.create_agent("a", "p")
    bystander = first.create_agent("b", "p")
    upstream.fake.enqueue(*[FakeReply(text="w " * 30, chunks=30, chunk_delay=0.1)] * 2)

    async def scenario() -> tuple[float, float, list]:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            target = asyncio.create_task(read_stream(client, key, "remote-1"))
            other = asyncio.create_task(read_stream(client, bystander, "remote-2"))
            await asyncio.sleep(0.4)
            response = await asyncio.to_thread(first.call, "POST", "/sessions/remote-1/kill")
            assert response.status_code == 200
            killed_at = time.monotonic()
            records = [await target, await other]
        return killed_at, records[0].ended_at, records

    killed_at, ended_at, (target, other) = asyncio.run(scenario())
    assert target.error is not None and target.error["error"]["type"] == "permission_error"
    assert ended_at - killed_at < 1.0
    assert other.completed

    with (
        anthropic.Anthropic(
            base_url=second.url,
            api_key=key,
            max_retries=0,
            default_headers={"X-Claude-Code-Session-Id": "remote-1"},
        ) as client,
        pytest.raises(anthropic.APIStatusError),
    ):
        client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_project_pause_on_one_replica_refuses_on_the_other_within_a_second(
    replicas: tuple[RunningTether, RunningTether], upstream: RunningFake
) -> None:
    """Judged by the trail, not by this client's clock: no call allowed on the other
    replica more than a second after the pause was recorded. A loaded machine slows the
    client's own requests too, and a slow answer sent before the deadline is no breach."""
    first, second = replicas
    first.create_project("p", upstream.fake.api_key)
    key = first.create_agent("a", "p")
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    assert httpx.post(f"{second.url}/v1/messages", json=body, headers=headers).status_code == 200

    assert first.call("POST", "/projects/p/pause").status_code == 200
    paused_at = time.monotonic()
    statuses = []
    while time.monotonic() - paused_at < 5.0:
        statuses.append(
            httpx.post(f"{second.url}/v1/messages", json=body, headers=headers).status_code
        )
        if statuses[-1] == 423:
            break
        time.sleep(0.02)
    assert statuses[-1] == 423, statuses
    (pause,) = [
        e
        for e in first.call("GET", "/audit", params={"action": "admin:projects."}).json()
        if e["action"] == "admin:projects.pause"
    ]
    deadline = _at(pause["ts"]) + timedelta(seconds=1)
    calls = [
        e
        for e in second.call("GET", "/audit", params={"action": "model:", "limit": "10000"}).json()
        if e["action"] == "model:messages"
    ]
    late = [e for e in calls if e["result"] == "allow" and _at(e["ts"]) > deadline]
    assert late == [], f"allowed more than a second after the pause at {pause['ts']}"


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts)
