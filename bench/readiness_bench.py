"""``tether check`` at scale: one project with 10,000 sessions and 1M audit events.

Starts a real runtime on a temporary SQLite file (or an EMPTY PostgreSQL database given with
``--database-url``), creates the project and its agents through the stores, bulk-loads the
fleet's month of hash-chained events from ``audit_scale.py`` into that one project (the
worst case: every event in the project checked) plus ``--sessions`` sessions, some open
for over an hour without a task, then times ``assess_project`` — what ``GET
/admin/v1/readiness`` and ``tether check`` run — and the audit-window question of ``tether
drill audit``.

    uv run python bench/readiness_bench.py --events 1000000 --sessions 10000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from audit_scale import COLUMNS, LOAD_CHUNK, MONTH_START_MS, fleet_events

from tether.audit.chain import GENESIS, ChainHead, link
from tether.clock import now_ms
from tether.config import Settings
from tether.readiness import assess_project
from tether.readiness.trail import audit_trail
from tether.readiness.usage import cloud_through_broker, mcp_through_tether, shared_keys
from tether.runtime import Runtime
from tether.store.key_addresses import HOUR_MS

AGENTS = 20


def _cloud_and_mcp(row: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    """Of the hook decisions (the ``n``-th), every 20th an ``aws`` command, every 20th
    (offset) an MCP tool call: what cloud_broker and mcp_servers look for."""
    if n % 20 == 0:
        return (*row[:8], "s3:GetObject", f"arn:aws:s3:::team-data/{n}.csv", *row[10:])
    if n % 20 == 10:
        return (
            *row[:8],
            "mcp:create_issue",
            f"mcp://{'jira' if n % 100 == 10 else 'github'}/create_issue",
            *row[10:],
        )
    return row


def project_events(
    total: int, project_id: str, agents: list[tuple[str, str]], heads: list[ChainHead]
) -> Iterator[list[tuple[Any, ...]]]:
    """The fleet's events moved into one project, ``now``-relative, chained in chunks
    (the last chunk's head appended to ``heads``, to become the trail's recorded head)."""
    head = ChainHead(0, GENESIS)
    shift = now_ms() - 30 * 86_400_000 - MONTH_START_MS
    chunk: list[tuple[Any, ...]] = []
    hooked = 0
    for row in fleet_events(total):
        agent_id, name = agents[int(row[3][1:]) % len(agents)]
        moved = (row[0], row[1] + shift, project_id, agent_id, name, *row[5:])
        if row[7] == "claude_code_hook":
            hooked += 1
            moved = _cloud_and_mcp(moved, hooked)
        chunk.append(moved)
        if len(chunk) == LOAD_CHUNK:
            linked, head = link(chunk, head)
            yield linked
            chunk = []
    if chunk:
        linked, head = link(chunk, head)
        yield linked
    heads.append(head)


def address_rows(keys: list[str]) -> list[tuple[Any, ...]]:
    """A week of hourly key use, one address per key; two keys shared in a few hours."""
    now = now_ms()
    hour_now = now - now % HOUR_MS
    rows = []
    for k, key_id in enumerate(keys):
        for h in range(7 * 24):
            hour = hour_now - h * HOUR_MS
            rows.append((key_id, hour, f"10.0.{k}.1", 40, 0))
            if k < 2 and h % 30 == 0:
                rows.append((key_id, hour, f"10.9.{k}.7", 12, 9))
    return rows


def session_rows(
    count: int, project_id: str, agents: list[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    rng = random.Random(3)
    now = now_ms()
    rows = []
    for n in range(count):
        started = now - rng.randrange(30 * 86_400_000)
        state = "active" if n % 10 == 0 else "terminated"
        rows.append((f"bench-{n:06d}", agents[n % len(agents)][0], project_id, state, started,
                     started + 60_000, 10, 0, 0, 0, 0, 0))  # fmt: skip
    return rows


SESSION_COLUMNS = ("id", "agent_id", "project_id", "state", "created_at", "last_activity_at",
                   "request_count", "input_tokens", "output_tokens", "cache_creation_tokens",
                   "cache_read_tokens", "cost_micros")  # fmt: skip


ADDRESS_COLUMNS = ("key_id", "hour", "address", "uses", "switches")


async def load(
    url: str,
    total: int,
    sessions: int,
    project_id: str,
    agents: list[tuple[str, str]],
    keys: list[str],
) -> float:
    started = time.perf_counter()
    heads: list[ChainHead] = []
    if make_url(url).get_backend_name() == "postgresql":
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            for chunk in project_events(total, project_id, agents, heads):
                await conn.copy_records_to_table("audit_events", records=chunk, columns=COLUMNS)
            await conn.copy_records_to_table(
                "sessions",
                records=session_rows(sessions, project_id, agents),
                columns=SESSION_COLUMNS,
            )
            await conn.copy_records_to_table(
                "agent_key_addresses", records=address_rows(keys), columns=ADDRESS_COLUMNS
            )
            await conn.execute(
                "UPDATE audit_chain SET seq = $1, hash = $2", heads[0].seq, heads[0].hash
            )
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        return time.perf_counter() - started
    db = sqlite3.connect(make_url(url).database or "")
    insert = (
        f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    for chunk in project_events(total, project_id, agents, heads):
        with db:
            db.executemany(insert, chunk)
    with db:
        db.executemany(
            f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
            session_rows(sessions, project_id, agents),
        )
        db.executemany("INSERT INTO agent_key_addresses VALUES (?, ?, ?, ?, ?)", address_rows(keys))
        db.execute("UPDATE audit_chain SET seq = ?, hash = ?", (heads[0].seq, heads[0].hash))
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - started


async def run(url: str | None, total: int, sessions: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database_url = url or f"sqlite+aiosqlite:///{tmp}/tether.db"
        settings = Settings(host="127.0.0.1", port=0, data_dir=Path(tmp), database_url=database_url)
        runtime = await Runtime.start(settings)
        try:
            project = await runtime.projects.create("bench")
            agents = []
            for n in range(AGENTS):
                agent, _ = await runtime.agents.create(f"bench-agent-{n}", project.id, "")
                agents.append((agent.id, agent.name))
            keys = [k.id for k in await runtime.agents.live_keys()]
            loaded = await load(database_url, total, sessions, project.id, agents, keys)
            print(f"loaded {total:,} events and {sessions:,} sessions in {loaded:.0f} s")
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                results = await assess_project(runtime, project)
                samples.append(time.perf_counter() - started)
            for r in results:
                print(f"  {r.check:14} {r.status.value:4}  {r.evidence[:90]}")
            print(f"assess_project: median {statistics.median(samples) * 1000:.0f} ms, "
                  f"max {max(samples) * 1000:.0f} ms over {rounds} rounds")  # fmt: skip
            new = {"shared_keys": lambda: shared_keys(runtime, project),
                   "cloud_broker": lambda: cloud_through_broker(runtime, project),
                   "mcp_servers": lambda: mcp_through_tether(runtime, project),
                   "audit_trail": lambda: audit_trail(runtime)}  # fmt: skip
            for name, check in new.items():
                took = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    await check()
                    took.append(time.perf_counter() - started)
                print(f"  of which {name}: median {statistics.median(took) * 1000:.0f} ms")
            since = now_ms() - 86_400_000
            started = time.perf_counter()
            window = await runtime.audit_store.query(
                agent_id=agents[0][0], since_ms=since, until_ms=since + 30 * 60_000, limit=100_000
            )
            print(f"audit window (30 min of one agent): {len(window)} events in "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
        finally:
            await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="an EMPTY database (default: temporary SQLite)")
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.events, args.sessions, args.rounds))


if __name__ == "__main__":
    main()
