"""Stopping tether with calls in flight loses none of them: each is charged and its
completion recorded before the process exits."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.test_tether_up import free_port, start, stop
from tests.support.fake_upstream import RunningFake
from tether.fakes.anthropic import FakeReply

ADMIN = "tta_shutdown-test-admin-token-0123456789"
CALLS = 8


def test_sigterm_with_streams_running_settles_every_call(
    tmp_path: Path, upstream: RunningFake
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_ADMIN_TOKEN": ADMIN,
        "TETHER_ANTHROPIC_BASE_URL": upstream.url,
        "TETHER_SHUTDOWN_GRACE_SECONDS": "1",
    }
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {ADMIN}"})
    process, _ = start(env, port)
    admin.post("/projects", json={"name": "p"}).raise_for_status()
    admin.put(
        "/projects/p/credentials/anthropic", json={"secret": upstream.fake.api_key}
    ).raise_for_status()
    key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
    upstream.fake.default = FakeReply(output_tokens=400, chunks=100, chunk_delay=0.1)

    def one(n: int) -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{url}/v1/messages",
                json={
                    "model": "claude-sonnet-5",
                    "max_tokens": 1000,
                    "stream": True,
                    "messages": [{"role": "user", "content": f"task {n}"}],
                },
                headers={
                    "x-api-key": key,
                    "anthropic-version": "2023-06-01",
                    "X-Tether-Session-Id": f"s{n}",
                },
                timeout=60,
            )

    threads = [threading.Thread(target=one, args=(n,)) for n in range(CALLS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 15
    while len(upstream.fake.received) < CALLS:
        assert time.monotonic() < deadline, "the calls never reached upstream"
        time.sleep(0.05)
    time.sleep(0.5)
    assert stop(process) == 0
    for thread in threads:
        thread.join(30)

    process, _ = start(env, port)
    try:
        completed = admin.get(
            "/audit", params={"action": "model:messages:completed", "limit": 100}
        ).json()
        assert len(completed) == CALLS, completed
        assert {e["result"] for e in completed} == {"cut"}, "cut once the grace ran out"
        assert all(e["attributes"]["usage_final"] is False for e in completed)
        budgets = admin.get("/budgets").json()
        daily = next(b for b in budgets if b["period"] == "daily")
        assert daily["reserved_usd"] == 0
        assert daily["spent_usd"] >= CALLS * 1000 * 10 / 1_000_000
    finally:
        assert stop(process) == 0
        admin.close()
