"""Slack clicks: what verifying one costs and how long one holds the event loop.

Times ``verify_signature`` alone on a typical click body (~3 kB) and on the largest body
accepted (64 kB), then posts signed clicks (each new, so each is checked for replay and
written down) to a real tether on a temporary SQLite file: a mapped user approving, and an
unmapped one refused; ``GET /healthz`` on the same server in the same run is the baseline.

    uv run python bench/slack_bench.py --clicks 200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tether.config import Settings
from tether.runtime import BOOTSTRAP_TOKEN_NAME, Runtime
from tether.server import build_app, make_runner
from tether.slack.actions import APPROVE
from tether.slack.signature import verify_signature
from tether.store.approvals import ApprovalRequest

SECRET = "bench-signing-secret-0123456789"
TEAM, USER = "T0BENCH1", "U0BENCH1"


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def click(approval_id: str, user: str, n: int, pad: int = 2500) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "bench"},
        "team": {"id": TEAM},
        "response_url": "http://127.0.0.1:9/nowhere",
        "message": {"text": "x" * pad, "n": n},
        "actions": [{"action_id": APPROVE, "value": approval_id, "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def verify_cost(size: int, rounds: int = 2000) -> float:
    body = click("apr_x", USER, 0, pad=size).encode()
    headers = signed(body.decode())
    start = time.perf_counter()
    for _ in range(rounds):
        verify_signature(
            SECRET,
            headers["X-Slack-Request-Timestamp"],
            headers["X-Slack-Signature"],
            body,
            time.time(),
        )
    return (time.perf_counter() - start) / rounds * 1e6


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:<32} p50 {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms   n={len(ms)}"


async def http(clicks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            port=0,
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/tether.db",
            budget_lease_percent=0.0,
        )
        runtime = await Runtime.start(settings)
        runner = make_runner(build_app(runtime), settings)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        try:
            await runtime.create_bootstrap_token()
            project = await runtime.projects.create("p")
            agent, _ = await runtime.agents.create("a", project.id, "bench")
            await runtime.directory.load()
            await runtime.slack.set_signing_secret(SECRET, "bench")
            await runtime.slack.map_user(TEAM, USER, project.id, BOOTSTRAP_TOKEN_NAME, "bench")
            ids = []
            for n in range(clicks):
                record = await runtime.approvals.request(
                    ApprovalRequest(project.id, agent.id, "s", "file:Delete", f"/d/{n}", "", {}),
                    3600_000,
                    {},
                )
                ids.append(record.id)
            async with aiohttp.ClientSession() as session:
                timings: dict[str, list[float]] = {"healthz": [], "approve": [], "refused": []}
                for n, approval_id in enumerate(ids):
                    for name, body in (
                        ("approve", click(approval_id, USER, n)),
                        ("refused", click(approval_id, "U0NOBODY", n)),
                    ):
                        start = time.perf_counter()
                        async with session.post(
                            f"{base}/slack/interactions", data=body, headers=signed(body)
                        ) as answer:
                            assert answer.status == 200, await answer.text()
                        timings[name].append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    async with session.get(f"{base}/healthz") as answer:
                        assert answer.status == 200
                    timings["healthz"].append((time.perf_counter() - start) * 1000)
            print(summary("GET /healthz (baseline)", timings["healthz"]))
            print(summary("click: approve (mapped user)", timings["approve"]))
            print(summary("click: refused (unmapped)", timings["refused"]))
        finally:
            await runner.cleanup()
            await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("tether.slack.replies").setLevel(logging.ERROR)  # no Slack listening
    print(f"load average: {os.getloadavg()}")
    print(f"verify_signature, ~3 kB body:  {verify_cost(2500):7.1f} µs")
    print(f"verify_signature, 64 kB body:  {verify_cost(60_000):7.1f} µs")
    asyncio.run(http(args.clicks))


if __name__ == "__main__":
    main()
