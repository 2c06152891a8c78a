"""Two real ``tether up`` processes on one PostgreSQL: 100 concurrent requests against a
budget that fits about ten never overspend it together."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.test_tether_up import free_port, start, stop
from tests.support.databases import postgres_database
from tests.support.fake_upstream import RunningFake
from tests.support.model_calls import claude_code_headers, post_retrying_busy
from tether.fakes.anthropic import FakeReply

ADMIN = "tta_e2e_budget_admin_token_0123456789"
LIMIT = 0.6  # each call may cost up to ~$0.06 (6000 output tokens at $10/M)
ONE_INCREMENT_USD = 2048 * 10 / 1_000_000
"""What a stream cut at its budget may overshoot by: one output increment."""


def test_two_processes_share_one_budget(tmp_path: Path, upstream: RunningFake) -> None:
    upstream.fake.default = FakeReply(
        output_tokens=5900, chunks=30, chunk_delay=0.001, fill_text=True
    )
    with postgres_database() as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "TETHER_DATABASE_URL": url,
            "TETHER_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "TETHER_ADMIN_TOKEN": ADMIN,
            "TETHER_ANTHROPIC_BASE_URL": upstream.url,
        }
        ports = [free_port(), free_port()]
        processes: list[subprocess.Popen[str]] = []
        try:
            for n, port in enumerate(ports):
                data_dir = str(tmp_path / f"r{n}")
                processes.append(start({**env, "TETHER_DATA_DIR": data_dir}, port)[0])
            with httpx.Client(
                base_url=f"http://127.0.0.1:{ports[0]}/admin/v1",
                headers={"Authorization": f"Bearer {ADMIN}"},
            ) as admin:
                admin.post("/projects", json={"name": "p"}).raise_for_status()
                admin.put(
                    "/projects/p/credentials/anthropic", json={"secret": upstream.fake.api_key}
                ).raise_for_status()
                key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
                budget = admin.put(
                    "/budgets", json={"project": "p", "period": "daily", "limit_usd": LIMIT}
                ).json()

                busy: list[str] = []

                async def one(client: httpx.AsyncClient, n: int) -> tuple[int, str]:
                    response, retried = await post_retrying_busy(
                        client,
                        f"http://127.0.0.1:{ports[n % 2]}/v1/messages",
                        {
                            "model": "claude-sonnet-5",
                            "max_tokens": 6000,
                            "stream": n % 4 < 2,
                            "messages": [{"role": "user", "content": "again"}],
                        },
                        claude_code_headers(key, f"s{n % 5}"),
                    )
                    busy.extend(retried)
                    if response.status_code == 200:
                        return 200, "cut" if "event: error" in response.text else ""
                    return response.status_code, response.json()["error"]["code"]

                async def burst() -> list[tuple[int, str]]:
                    async with httpx.AsyncClient(timeout=60) as client:
                        return await asyncio.gather(*[one(client, n) for n in range(100)])

                results = asyncio.run(burst())
                completed = results.count((200, ""))
                cut = results.count((200, "cut"))
                refused = {r for r in results if r[0] != 200}
                # How many whole answers fit depends on how the streams' increments
                # interleave with them: the bound is the spend below, not a count.
                assert completed >= 1, results
                assert refused == {(402, "budget_exceeded")}, busy

                deadline = time.monotonic() + 5
                while True:
                    state = next(b for b in admin.get("/budgets").json() if b["id"] == budget["id"])
                    if state["reserved_usd"] == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                assert state["reserved_usd"] == 0
                assert 0 < state["spent_usd"] <= LIMIT + cut * ONE_INCREMENT_USD
        finally:
            for process in processes:
                assert stop(process) == 0
