"""Gateway benchmark: the same Messages requests sent directly to the fake upstream and
through tether, in one run, on this machine.

Open-loop at fixed rates (30, 100, 300 req/s) and closed-loop at concurrency 32, streaming
and not. Prints added latency (P50/P95/P99), max throughput and tether's CPU time per
request. Every phase is bounded in count and time.

    uv run python bench/gateway_bench.py            # full run (~2 minutes)
    uv run python bench/gateway_bench.py --quick    # shorter phases
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from harness import cpu_seconds, free_port, wait_http

UPSTREAM_KEY = "sk-ant-bench-upstream"
ADMIN_TOKEN = "tta_bench_admin_token_0123456789abcdef"
BODY = {
    "model": "claude-sonnet-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello in a short sentence."}],
}


@dataclass
class Phase:
    latencies_ms: list[float]
    errors: int
    elapsed: float
    cpu: float

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100 * len(data)))]

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.elapsed if self.elapsed else 0.0


async def one(session: aiohttp.ClientSession, url: str, headers: dict, stream: bool) -> float:
    started = time.perf_counter()
    async with session.post(url, json={**BODY, "stream": stream}, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    return (time.perf_counter() - started) * 1000


async def warm_up(session: aiohttp.ClientSession, url: str, headers: dict, stream: bool) -> None:
    """Open connections and let tether's one-time work (first session, statement compiles,
    the first activity flush) finish before measuring."""
    for _ in range(20):
        await one(session, url, headers, stream)
    await asyncio.sleep(1.2)


async def open_loop(
    url: str, headers: dict, stream: bool, rate: int, seconds: float, pid: int | None
) -> Phase:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await warm_up(session, url, headers, stream)

        async def run() -> None:
            nonlocal errors
            try:
                latencies.append(await one(session, url, headers, stream))
            except Exception:
                errors += 1

        total = int(rate * seconds)
        cpu0 = cpu_seconds(pid) if pid else 0.0
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(run()))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
        elapsed = time.perf_counter() - start
        cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
    return Phase(latencies, errors, elapsed, cpu)


async def closed_loop(
    url: str, headers: dict, stream: bool, concurrency: int, seconds: float, pid: int | None
) -> Phase:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await warm_up(session, url, headers, stream)
        stop_at = time.perf_counter() + seconds
        cpu0 = cpu_seconds(pid) if pid else 0.0
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                try:
                    latencies.append(await one(session, url, headers, stream))
                except Exception:
                    errors += 1

        await asyncio.wait_for(
            asyncio.gather(*[worker() for _ in range(concurrency)]), seconds + 30
        )
        elapsed = time.perf_counter() - start
        cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
    return Phase(latencies, errors, elapsed, cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument(
        "--budget", action="store_true", help="with a (never reached) daily budget on the project"
    )
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 5.0
    workdir = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    fake_port, tether_port = free_port(), free_port()
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(workdir),
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake_port}",
        "TETHER_PORT": str(tether_port),
    }
    if args.database_url:
        env["TETHER_DATABASE_URL"] = args.database_url
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tether.fakes.anthropic",
            "--port",
            str(fake_port),
            "--api-key",
            UPSTREAM_KEY,
        ],
        stdout=subprocess.DEVNULL,
    )
    tether = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{tether_port}/healthz")
        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{tether_port}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        admin.post("/projects", json={"name": "bench"}).raise_for_status()
        # The same body thousands of times in one session is this benchmark, not a loop: the
        # repeat guard is off, the other guards (breaker, retries, progress) stay on.
        admin.patch("/projects/bench/guards", json={"repeat_limit": None}).raise_for_status()
        admin.put(
            "/projects/bench/credentials/anthropic", json={"secret": UPSTREAM_KEY}
        ).raise_for_status()
        key = admin.post("/agents", json={"name": "bench-agent", "project": "bench"}).json()["key"]
        if args.budget:
            admin.put(
                "/budgets", json={"project": "bench", "period": "daily", "limit_usd": 1_000_000}
            ).raise_for_status()
        direct = (
            f"http://127.0.0.1:{fake_port}/v1/messages",
            {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"},
            None,
        )
        proxied = (
            f"http://127.0.0.1:{tether_port}/v1/messages",
            {
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Claude-Code-Session-Id": "bench-session",
            },
            tether.pid,
        )
        rows = []
        for stream in (False, True):
            for rate in (30, 100, 300):
                base = asyncio.run(open_loop(*direct[:2], stream, rate, seconds, None))
                via = asyncio.run(open_loop(*proxied[:2], stream, rate, seconds, proxied[2]))
                rows.append((f"open {rate}/s", stream, base, via))
            base = asyncio.run(closed_loop(*direct[:2], stream, 32, seconds, None))
            via = asyncio.run(closed_loop(*proxied[:2], stream, 32, seconds, proxied[2]))
            rows.append(("closed c=32", stream, base, via))
        print(
            f"\ntether gateway benchmark ({'quick' if args.quick else 'full'}; "
            f"{'PostgreSQL' if args.database_url else 'SQLite'}; {os.cpu_count()} cores)"
        )
        print(
            f"{'phase':<13}{'stream':<7}{'direct p50/p95/p99 ms':<24}{'tether p50/p95/p99 ms':<24}"
            f"{'added p50/p99':<15}{'req/s d→t':<16}{'CPU ms/req':<11}{'errors'}"
        )
        for name, stream, base, via in rows:
            cpu_per = via.cpu / max(1, len(via.latencies_ms)) * 1000
            print(
                f"{name:<13}{'yes' if stream else 'no':<7}"
                f"{base.pct(50):6.2f}/{base.pct(95):6.2f}/{base.pct(99):6.2f}  "
                f"{via.pct(50):6.2f}/{via.pct(95):6.2f}/{via.pct(99):6.2f}  "
                f"{via.pct(50) - base.pct(50):+5.2f}/{via.pct(99) - base.pct(99):+5.2f}  "
                f"{base.throughput:6.0f}→{via.throughput:6.0f}  {cpu_per:7.3f}    "
                f"{base.errors}/{via.errors}"
            )
        events = admin.get("/audit", params={"limit": "1", "action": "model:"}).json()
        print(f"\naudit check: last event {json.dumps(events[-1]['action']) if events else 'none'}")
    finally:
        tether.terminate()
        fake.terminate()
        tether.wait(15)
        fake.wait(15)


if __name__ == "__main__":
    main()
