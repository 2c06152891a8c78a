"""SIGTERM of a real ``tether up`` while 40 streams hang upstream — half of their clients
already gone, half still waiting — stops within the grace (plus the cut), leaves no
decision without its completion event and no reservation open."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import anthropic
import httpx

from tests.e2e.test_tether_up import free_port, start
from tests.support.fake_upstream import RunningFake
from tether.fakes.anthropic import FakeReply

ADMIN = "tta_ordered-shutdown-admin-token-0123456789"
GONE, WAITING = 20, 20
GRACE = 2


def test_sigterm_with_hanging_streams_settles_and_records_every_call(
    tmp_path: Path, upstream: RunningFake
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_ADMIN_TOKEN": ADMIN,
        "TETHER_ANTHROPIC_BASE_URL": upstream.url,
        "TETHER_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "TETHER_BUDGET_LEASE_PERCENT": "0",
    }
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {ADMIN}"})
    process, _ = start(env, port)
    assert process.stdout is not None
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        admin.post("/projects", json={"name": "p"}).raise_for_status()
        admin.put(
            "/projects/p/credentials/anthropic", json={"secret": upstream.fake.api_key}
        ).raise_for_status()
        key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
        admin.put(
            "/budgets", json={"project": "p", "period": "daily", "limit_usd": 1000}
        ).raise_for_status()
        # message_start at once, then nothing for longer than the grace: a hanging upstream
        upstream.fake.default = FakeReply(output_tokens=4000, chunks=4, chunk_delay=GRACE + 6)
        client = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0, timeout=60)
        started = threading.Barrier(GONE + WAITING + 1, timeout=30)

        def one(n: int) -> None:
            with (
                contextlib.suppress(anthropic.APIError, httpx.HTTPError),
                client.messages.stream(
                    model="claude-sonnet-5",
                    max_tokens=8000,
                    messages=[{"role": "user", "content": f"task {n}"}],
                    extra_headers={"X-Tether-Session-Id": f"s{n}"},
                ) as stream,
            ):
                for _ in stream:
                    started.wait()
                    if n < GONE:
                        return  # the client gives up mid-stream
                    break
                for _ in stream:
                    pass

        threads = [threading.Thread(target=one, args=(n,)) for n in range(GONE + WAITING)]
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.5)

        stopping = time.monotonic()
        process.terminate()
        code = process.wait(timeout=GRACE + 20)
        took = time.monotonic() - stopping
        for thread in threads:
            thread.join(10)
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    reader.join(5)
    process.stdout.close()
    log = "".join(output)
    assert code == 0, log[-3000:]
    assert took < GRACE + 8, f"the stop took {took:.1f} s"
    assert "refusing to act unrecorded" not in log

    process, _ = start(env, port)
    try:
        decisions = admin.get("/audit", params={"action": "model:messages", "limit": 500}).json()
        allowed = {e["id"] for e in decisions if e["action"] == "model:messages"}
        completed = [
            e for e in decisions if e["action"] == "model:messages:completed"
        ] or admin.get("/audit", params={"action": "model:messages:completed", "limit": 500}).json()
        assert len(allowed) == GONE + WAITING
        assert {e["attributes"]["decision_event"] for e in completed} == allowed
        assert all(e["attributes"]["usage_final"] is False for e in completed)
        daily = next(b for b in admin.get("/budgets").json() if b["period"] == "daily")
        assert daily["reserved_usd"] == 0, "every reservation settled"
        unseen = 2048 * 10 / 1_000_000  # each charged as a cut answer: the unseen tail
        assert daily["spent_usd"] >= (GONE + WAITING) * unseen
    finally:
        process.terminate()
        process.wait(20)
        if process.stdout is not None:
            process.stdout.close()
        admin.close()
