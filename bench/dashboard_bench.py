"""Dashboard benchmark: every page's render time with a big store behind it.

Fills a fresh SQLite store with 10,000 sessions and 1,000,000 audit events (written
directly with sqlite3, in seconds; the events are not hash-chained, so `verify` would
report the first one), starts tether on it in-process, logs in to ``/ui`` and times each
page (sequential GETs, the whole server-side render including its loopback admin calls).
The target: every page under 200 ms.

    uv run python bench/dashboard_bench.py [--sessions 10000] [--events 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import httpx
from harness import pct, timed

from tether.config import Settings
from tether.runtime import Runtime
from tether.server import build_app, make_runner, make_site

TARGET_MS = 200.0
PAGES = [
    "/ui/overview",
    "/ui/overview/sessions",
    "/ui/sessions/bench-session-00000",
    "/ui/agents",
    "/ui/agents/bench-agent-0",
    "/ui/projects",
    "/ui/projects/bench",
    "/ui/approvals",
    "/ui/audit",
    "/ui/audit?agent=bench-agent-3&result=deny&since=2000-01-01T00:00:00Z",
    "/ui/audit?agent=bench-agent-3&since=2000-01-01T00:00:00Z",
    "/ui/audit?session=bench-session-00042",
]
RESULTS = ["allow"] * 8 + ["ok", "deny"]


async def _started(settings: Settings) -> tuple[Runtime, object, str]:
    runtime = await Runtime.start(settings)
    runner = make_runner(build_app(runtime), settings)
    await runner.setup()
    site = make_site(runner, settings, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runtime, runner, f"http://127.0.0.1:{port}"


async def _stop(runtime: Runtime, runner: object) -> None:
    await runner.cleanup()  # type: ignore[attr-defined]
    await runtime.stop()


def _fill(
    db: Path, project_id: str, agents: list[tuple[str, str]], sessions: int, events: int
) -> None:
    now = int(time.time() * 1000)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    conn.executemany(
        "INSERT INTO sessions (id, agent_id, project_id, state, created_at, last_activity_at,"
        " request_count, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,"
        " cost_micros) VALUES (?,?,?,?,?,?,?,?,?,0,0,?)",
        (
            (
                f"bench-session-{i:05d}", agents[i % len(agents)][0], project_id,
                "active" if i % 7 else "terminated", now - (sessions - i) * 60_000,
                now - (sessions - i) * 1000, 20, 40_000 + i, 2_000 + i, 150_000 + i * 10,
            )
            for i in range(sessions)
        ),
    )  # fmt: skip
    head = conn.execute("SELECT seq FROM audit_chain").fetchone()[0]
    start = now - events * 50
    rng = random.Random(7)
    attributes = json.dumps({"model": "claude-sonnet-4", "input_tokens": 1200})

    def rows():  # type: ignore[no-untyped-def]
        for n in range(events):
            agent_id, agent_name = agents[n % len(agents)]
            result = rng.choice(RESULTS)
            yield (
                f"bev_{n:012d}", start + n * 50, project_id, agent_id, agent_name,
                f"bench-session-{n % sessions:05d}", f"agent:{agent_name}", "anthropic",
                "model:messages", "anthropic:model/claude-sonnet-4", result,
                "policy_denied" if result == "deny" else None, "bench", attributes,
                head + 1 + n, "0" * 64, f"{n:064x}",
            )  # fmt: skip

    conn.executemany(
        "INSERT INTO audit_events (id, ts, project_id, agent_id, agent_name, session_id, actor,"
        " source, action, resource, result, code, reason, attributes, seq, prev_hash, hash)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows(),
    )
    conn.execute("UPDATE audit_chain SET seq = ?, hash = ?", (head + events, f"{events - 1:064x}"))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def main(sessions: int, events: int, runs: int) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="tether-dashboard-bench-"))
    settings = Settings(host="127.0.0.1", port=0, data_dir=workdir, sqlite_synchronous="NORMAL")
    runtime, runner, url = await _started(settings)
    token = await runtime.create_bootstrap_token()
    assert token is not None
    async with httpx.AsyncClient(
        base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {token}"}
    ) as admin:
        project = (await admin.post("/projects", json={"name": "bench"})).json()
        agents = []
        for i in range(8):
            made = (
                await admin.post("/agents", json={"name": f"bench-agent-{i}", "project": "bench"})
            ).json()
            agents.append((made["agent"]["id"], made["agent"]["name"]))
    await _stop(runtime, runner)

    started = time.perf_counter()
    _fill(workdir / "tether.db", project["id"], agents, sessions, events)
    print(
        f"filled {sessions:,} sessions and {events:,} audit events in "
        f"{time.perf_counter() - started:.1f} s"
    )

    runtime, runner, url = await _started(settings)
    ok = True
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as browser:
            await browser.post("/ui/login", data={"token": token})
            print(f"page render times over {runs} sequential GETs (target < {TARGET_MS:.0f} ms):")
            for page in PAGES:

                async def get(_i: int, page: str = page) -> None:
                    answer = await browser.get(page)
                    assert answer.status_code == 200, (page, answer.status_code, answer.text[:300])

                await get(0)  # warm the caches once
                samples = await timed(runs, get)
                p50, worst = pct(samples, 50), max(samples)
                ok = ok and p50 < TARGET_MS
                print(
                    f"  {page:<70} P50 {p50:7.1f} ms  P95 {pct(samples, 95):7.1f} ms  "
                    f"max {worst:7.1f} ms"
                )
    finally:
        await _stop(runtime, runner)
        shutil.rmtree(workdir, ignore_errors=True)
    print("all pages under target (P50)" if ok else "SOME PAGES OVER TARGET")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    raise SystemExit(0 if asyncio.run(main(args.sessions, args.events, args.runs)) else 1)
