"""Fleet benchmark: more than one tether process on one PostgreSQL database and one Redis.

1. Throughput, closed loop (32 sessions, one request at a time each) through one process
   and through ``tether up --workers 2`` (every control on: identity, session, guards with
   their memory in Redis, a Cedar policy, a budget reserved on every call, durable audit);
   also one process with the guards' memory in-process, which is what Redis adds.
2. Kill propagation between two replicas: the kill issued on one (admin API), the first
   refusal of that session on the other.
3. The CLI's own start time for ``tether sessions kill`` (wall and CPU, whole process).

    uv run python bench/fleet_bench.py [--quick] [--database-url postgresql://…]

Needs PostgreSQL (default: a new database on 127.0.0.1:5432, dropped afterwards) and
Redis (``TETHER_REDIS_URL``, default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import httpx
from gateway_bench import ADMIN_TOKEN, BODY, UPSTREAM_KEY
from harness import cpu_seconds, free_port, wait_http

MASTER_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
PERMIT_ALL = "permit(principal, action, resource);"
TETHER = [sys.executable, "-m", "tether.cli"]


@contextmanager
def postgres(url: str) -> Iterator[str]:
    if url:
        yield url
        return
    name = f"tether_fleet_bench_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the workers)."""
    total = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += cpu_seconds(int(child))
    return total


def redis_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


class Tethers:
    """``tether up`` processes started for the benchmark, stopped at the end."""

    def __init__(self, workdir: Path, database_url: str, fake_port: int) -> None:
        self.workdir, self.database_url, self.fake_port = workdir, database_url, fake_port
        self.running: list[subprocess.Popen[bytes]] = []
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}:"

    def env(self, port: int, redis: bool) -> dict[str, str]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "TETHER_DATA_DIR": str(self.workdir / str(port)),
            "TETHER_DATABASE_URL": self.database_url,
            "TETHER_MASTER_KEY": MASTER_KEY,
            "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
            "TETHER_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.fake_port}",
            "TETHER_PORT": str(port),
            "TETHER_LOG_LEVEL": "WARNING",
            "TETHER_REDIS_PREFIX": self.prefix,
        }
        if redis:
            env["TETHER_REDIS_URL"] = os.environ.get("TETHER_REDIS_URL", "redis://127.0.0.1:6379/0")
        return env

    def start(self, workers: int = 1, redis: bool = True) -> tuple[str, int]:
        port = free_port()
        args = ["up", "--workers", str(workers)] if workers > 1 else ["up"]
        process = subprocess.Popen(
            [*TETHER, *args],
            env=self.env(port, redis),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.running.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", timeout=60)
        while httpx.get(f"{url}/readyz").status_code != 200:
            time.sleep(0.1)
        return url, process.pid

    def stop(self, pid: int | None = None) -> None:
        for process in [p for p in self.running if pid is None or p.pid == pid]:
            process.terminate()
            process.wait(60)
            self.running.remove(process)


def set_up_project(url: str) -> str:
    """Project ``bench`` with a policy, a budget on every call and the upstream key; the
    repeat guard off (the same body thousands of times is this benchmark, not a loop)."""
    with httpx.Client(
        base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as admin:
        if admin.get("/projects/bench").status_code == 404:
            admin.post("/projects", json={"name": "bench", "default_budgets": False})
            admin.put("/projects/bench/policy", json={"source": PERMIT_ALL}).raise_for_status()
            admin.patch("/projects/bench/guards", json={"repeat_limit": None}).raise_for_status()
            admin.put(
                "/projects/bench/credentials/anthropic", json={"secret": UPSTREAM_KEY}
            ).raise_for_status()
            admin.put(
                "/budgets", json={"project": "bench", "period": "daily", "limit_usd": 1_000_000}
            ).raise_for_status()
        answer = admin.post(
            "/agents", json={"name": f"a-{uuid.uuid4().hex[:6]}", "project": "bench"}
        )
        answer.raise_for_status()
        key: str = answer.json()["key"]
        return key


async def closed_loop(url: str, key: str, sessions: int, seconds: float) -> tuple[int, int, float]:
    """Requests answered, errors, elapsed seconds."""
    done = errors = 0
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def one(session: str) -> None:
            nonlocal done, errors
            headers = {
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Tether-Session-Id": session,
            }
            async with client.post(f"{url}/v1/messages", json=BODY, headers=headers) as answer:
                await answer.read()
                if answer.status == 200:
                    done += 1
                else:
                    errors += 1

        names = [f"s-{uuid.uuid4().hex[:10]}" for _ in range(sessions)]
        for name in names:
            await one(name)
        done = errors = 0
        stop_at = time.perf_counter() + seconds
        started = time.perf_counter()

        async def user(session: str) -> None:
            while time.perf_counter() < stop_at:
                await one(session)

        await asyncio.wait_for(asyncio.gather(*(user(n) for n in names)), seconds + 60)
        return done, errors, time.perf_counter() - started


def throughput(tethers: Tethers, seconds: float) -> None:
    print(f"1. closed loop, 32 sessions, {seconds:.0f} s each (every control on, PostgreSQL)")
    print(
        f"   {'configuration':<42}{'req/s':>8}{'CPU ms/req':>12}{'Redis ms/req':>14}{'errors':>8}"
    )
    redis = redis_pid()
    results = {}
    for name, workers, shared in (
        ("1 process, guard memory in-process", 1, False),
        ("1 process, guard memory in Redis", 1, True),
        ("--workers 2, guard memory in Redis", 2, True),
    ):
        url, pid = tethers.start(workers, shared)
        key = set_up_project(url)
        asyncio.run(closed_loop(url, key, 32, min(2.0, seconds)))
        cpu0 = process_tree_cpu(pid)
        redis0 = cpu_seconds(redis) if redis else 0.0
        done, errors, elapsed = asyncio.run(closed_loop(url, key, 32, seconds))
        cpu = process_tree_cpu(pid) - cpu0
        redis_cpu = (cpu_seconds(redis) - redis0) if redis else float("nan")
        results[name] = done / elapsed
        print(
            f"   {name:<42}{done / elapsed:8.0f}{cpu / max(done, 1) * 1000:12.3f}"
            f"{redis_cpu / max(done, 1) * 1000:14.3f}{errors:8d}"
        )
        tethers.stop(pid)
    one, two = (
        results["1 process, guard memory in Redis"],
        results["--workers 2, guard memory in Redis"],
    )
    print(f"   1 -> 2 processes: x{two / one:.2f}")


def kill_propagation(tethers: Tethers, rounds: int) -> None:
    first, first_pid = tethers.start()
    second, second_pid = tethers.start()
    key = set_up_project(first)
    admin = httpx.Client(
        base_url=f"{first}/admin/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    other = httpx.Client(base_url=second, headers={"x-api-key": key})
    times = []
    for _ in range(rounds):
        session = f"kill-{uuid.uuid4().hex[:8]}"

        def ask(i: int, session: str = session) -> int:
            body = {
                "session_id": session,
                "action": "s3:GetObject",
                "resource": f"arn:aws:s3:::b/{i}",
            }
            return other.post("/v1/authorize", json=body).status_code

        assert ask(0) == 200
        with httpx.Client() as killer:
            request = killer.build_request(
                "POST",
                f"{first}/admin/v1/sessions/{session}/kill",
                json={"reason": "bench"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            started = time.perf_counter()
            killer.send(request).raise_for_status()
            acknowledged = time.perf_counter()
            i = 1
            while ask(i) != 423:
                i += 1
                if time.perf_counter() - started > 5:
                    raise RuntimeError("the kill never reached the other replica")
        refused = time.perf_counter()
        times.append(((refused - started) * 1000, (acknowledged - started) * 1000))
    spread = sorted(t for t, _ in times)
    print(f"2. kill propagation between two replicas ({rounds} kills)")
    print(
        f"   kill issued on A -> first refusal on B: median {statistics.median(spread):.1f} ms, "
        f"max {spread[-1]:.1f} ms (kill acknowledged by A after median "
        f"{statistics.median(a for _, a in times):.1f} ms)"
    )
    admin.close()
    other.close()
    tethers.stop(first_pid)
    tethers.stop(second_pid)


def cli_start(runs: int) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "TETHER_URL": "http://127.0.0.1:9",
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    command = [str(Path(sys.executable).with_name("tether")), "sessions", "kill", "s-1"]
    subprocess.run(command, env=env, capture_output=True)  # writes the bytecode caches
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    print(f"3. `tether sessions kill` start to exit (tether unreachable), {runs} runs")
    print(
        f"   wall median {statistics.median(walls) * 1000:.0f} ms (min {min(walls) * 1000:.0f}), "
        f"CPU median {statistics.median(cpus) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--database-url", default="", help="default: a new local database")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else 15.0
    print(f"tether fleet benchmark ({'quick' if args.quick else 'full'}; {os.cpu_count()} cores)")
    workdir = Path(tempfile.mkdtemp(prefix="tether-fleet-bench-"))
    fake_port = free_port()
    fake = subprocess.Popen(
        [*[sys.executable, "-m", "tether.fakes.anthropic"], "--port", str(fake_port),
         "--api-key", UPSTREAM_KEY],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{fake_port}/")
        with postgres(args.database_url) as url:
            tethers = Tethers(workdir, url, fake_port)
            try:
                throughput(tethers, seconds)
                kill_propagation(tethers, 5 if args.quick else 20)
            finally:
                tethers.stop()
        cli_start(5 if args.quick else 15)
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
