"""Two tether processes on one PostgreSQL: a kill issued on one is enforced by the other
within a second, running streams included."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.streams import MODEL, read_stream
from tests.support.tcp_proxy import CuttableProxy
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


def test_a_kill_committed_late_is_enforced_after_a_later_change_was_applied(
    here_and_there: tuple[RunningTether, RunningTether, CuttableProxy], upstream: RunningFake
) -> None:
    """PostgreSQL hands out change ids as rows are inserted, and transactions commit in
    any order: ``here``'s kill takes its id, then waits on the network; ``there`` commits
    a later change meanwhile and applies it. The kill, committed after, sits below the
    last id ``there`` applied and (held long enough) outside any window of recent changes:
    ``there`` must still apply it, however late it lands."""
    here, there, proxy = here_and_there
    here.create_project("p")
    stored = there.call(
        "PUT", "/projects/p/credentials/anthropic", json={"secret": upstream.fake.api_key}
    )
    assert stored.status_code == 200, stored.text
    key = here.create_agent("a", "p")
    slow, quick = "slow-kill-4e1b90c2", "quick-kill-7a2d5f13"
    for session in (slow, quick):
        first = _session_call(there, key, session)
        assert first.status_code == 200, first.text
    change_row = b"session" + len(slow).to_bytes(4, "big") + slow.encode()

    proxy.hold_reply_to(change_row, LATE_COMMIT_SECONDS)
    with ThreadPoolExecutor(1) as pool:
        slow_kill = pool.submit(here.call, "POST", f"/sessions/{slow}/kill")
        assert proxy.fault_taken.wait(10), "here's kill never recorded its change"
        quick_kill = there.call("POST", f"/sessions/{quick}/kill")
        assert quick_kill.status_code == 200, quick_kill.text
        assert _session_call(there, key, quick).status_code == 423, "there applied its own"
        assert slow_kill.result(LATE_COMMIT_SECONDS + 20).status_code == 200

    deadline = time.monotonic() + 3
    while (late := _session_call(there, key, slow)).status_code == 200:
        assert time.monotonic() < deadline, "there never applied the kill committed late"
        time.sleep(0.2)
    assert late.status_code == 423, late.text
    assert f"session {slow} was terminated" in late.json()["error"]["message"]


LATE_COMMIT_SECONDS = 7.0
"""Longer than any window of recent changes a reader could re-read by the clock."""


def _session_call(tether: RunningTether, key: str, session: str) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 20,
              "messages": [{"role": "user", "content": f"a turn of {session}"}]},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                 "X-Claude-Code-Session-Id": session},
        timeout=30,
    )  # fmt: skip
