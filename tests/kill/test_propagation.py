"""Two tether processes on one PostgreSQL: a kill issued on one is enforced by the other
within a second, running streams included."""

from __future__ import annotations

import asyncio
import time

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
    first, second = replicas
    first.create_project("p", upstream.fake.api_key)
    key = first.create_agent("a", "p")
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    assert httpx.post(f"{second.url}/v1/messages", json=body, headers=headers).status_code == 200

    assert first.call("POST", "/projects/p/pause").status_code == 200
    paused_at = time.monotonic()
    while True:
        status = httpx.post(f"{second.url}/v1/messages", json=body, headers=headers).status_code
        if status == 423 or time.monotonic() - paused_at > 1.0:
            break
        time.sleep(0.02)
    assert status == 423
    assert time.monotonic() - paused_at <= 1.0
