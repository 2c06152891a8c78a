"""Policy work against a big trail: ``policy test --replay``, ``policy suggest`` and
``policy lint`` over a synthetic week of a fleet's decisions (S3, IAM, EC2, files and
commands; 50 agents; 5 % denied), on SQLite or PostgreSQL.

    uv run python bench/policy_trail_bench.py --decisions 1000000 [--database-url …]

With ``--database-url``, a trail an earlier run left there is used again (no reload).

The baselines in the same run are reads alone: every decision row of the week fetched
page by page in time order (``AuditStore.decision_pages``, the read replay used before)
and dropped, and the same with the streaming read replay uses now
(``AuditStore.decision_rows``). Target: replay of 1M decisions in < 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tether.audit.table import AuditStore
from tether.policy.compiled import compile_policy
from tether.policy.lint import lint_policy
from tether.policy.replay import replay
from tether.policy.suggest import suggest_policy
from tether.policy.trail import TrailSummary, fold_trail
from tether.store.database import Database
from tether.store.migrate import upgrade

PROJECT_ID, PROJECT = "p" * 32, "fleet"
WEEK_MS = 7 * 86_400_000
CHUNK = 100_000
COLUMNS = ("id", "ts", "project_id", "agent_id", "agent_name", "session_id", "actor", "source",
           "action", "resource", "result", "code", "reason", "attributes", "seq")  # fmt: skip
CANDIDATE = """
permit(principal, action in [Action::"s3:GetObject", Action::"s3:PutObject"], resource)
  when { resource.arn like "arn:aws:s3:::dev-*" };
permit(principal, action == Action::"file:Read", resource) when { resource.arn like "/repo/*" };
forbid(principal, action, resource) when { resource.tags.env == "prod" };
"""


def decisions(total: int, start_ms: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(5)
    kinds = (
        ("s3:GetObject", lambda: f"arn:aws:s3:::dev-{rng.randrange(8)}/data/{rng.randrange(400)}.csv"),  # noqa: E501
        ("s3:PutObject", lambda: f"arn:aws:s3:::dev-{rng.randrange(8)}/out/{rng.randrange(200)}.json"),  # noqa: E501
        ("iam:GetRole", lambda: f"arn:aws:iam::123456789012:role/app-{rng.randrange(30)}"),
        ("ec2:DescribeInstances", lambda: f"arn:aws:ec2:us-east-1:123456789012:instance/i-{rng.randrange(500):05x}"),  # noqa: E501
        ("file:Read", lambda: f"/repo/src/mod{rng.randrange(40)}/f{rng.randrange(50)}.py"),
        ("file:Write", lambda: f"/repo/src/mod{rng.randrange(40)}/f{rng.randrange(50)}.py"),
        ("tool:Bash", lambda: f"command:make test-{rng.randrange(20)}"),
    )  # fmt: skip
    for n in range(total):
        action, resource = kinds[rng.randrange(len(kinds))]
        denied = rng.random() < 0.05
        tags = {"env": "prod" if denied else "dev"}
        attributes = orjson.dumps({"tags": tags, "policy_rules": ["'bench' (line 1)"]}).decode()
        agent = f"agent-{rng.randrange(50)}"
        yield (
            f"{n:032x}", start_ms + n * WEEK_MS // total, PROJECT_ID, agent, agent, f"s-{n // 40}",
            f"agent:{agent}", "authorize", action, resource(), "deny" if denied else "allow",
            "policy_denied" if denied else None, "bench", attributes, n + 1,
        )  # fmt: skip


async def load(url: str, total: int, start_ms: int) -> float:
    started = time.perf_counter()
    rows = decisions(total, start_ms)
    if make_url(url).get_backend_name() == "postgresql":
        import asyncpg

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            while chunk := [r for _, r in zip(range(CHUNK), rows, strict=False)]:
                await conn.copy_records_to_table("audit_events", records=chunk, columns=COLUMNS)
            await conn.execute("ANALYZE audit_events")
        finally:
            await conn.close()
    else:
        sqlite = sqlite3.connect(make_url(url).database or "")
        insert = (
            f"INSERT INTO audit_events ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        while chunk := [r for _, r in zip(range(CHUNK), rows, strict=False)]:
            with sqlite:
                sqlite.executemany(insert, chunk)
        sqlite.execute("ANALYZE")
        sqlite.close()
    return time.perf_counter() - started


class Phase:
    """Wall and CPU seconds of one phase: on a shared machine the CPU time is the figure
    that load does not inflate (all of the process's threads, SQLite's included)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _fmt(spent: tuple[float, float]) -> str:
    return f"{spent[0]:6.2f} s wall {spent[1]:6.2f} s CPU"


async def _loaded(db: Database, total: int) -> int | None:
    """The first decision's time when an earlier run (``--database-url``) left the trail."""
    async with db.read() as conn:
        count, first = (
            await conn.execute(
                text("SELECT count(*), min(ts) FROM audit_events WHERE project_id = :p"),
                {"p": PROJECT_ID},
            )
        ).one()
    return int(first) if count == total else None


async def run(url: str, total: int) -> None:
    db = Database(url)
    await upgrade(db)
    start_ms = await _loaded(db, total)
    if start_ms is None:
        start_ms = int(time.time() * 1000) - WEEK_MS
        print(f"loading {total:,} decisions … {await load(url, total, start_ms):.1f} s")
    else:
        print(f"{total:,} decisions already loaded by an earlier run")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    store = AuditStore(db)
    window = {"project_id": PROJECT_ID, "since_ms": start_ms, "until_ms": start_ms + WEEK_MS + 1}

    phase = Phase()
    read = 0
    async for page in store.decision_pages(**window):
        read += len(page)
    baseline = phase.stop()

    phase = Phase()
    streamed = 0
    async for rows in store.decision_rows(**window):
        streamed += len(rows)
    stream = phase.stop()
    assert streamed == read, (streamed, read)

    phase = Phase()
    summary = TrailSummary()
    await fold_trail(store.decision_rows(**window), summary)
    _ = summary.decisions
    folded = phase.stop()

    candidate = compile_policy(CANDIDATE)
    phase = Phase()
    report = replay(candidate, PROJECT, summary.decisions, [])
    replayed = phase.stop()

    phase = Phase()
    suggestion = suggest_policy(PROJECT, summary.decisions)
    suggested = phase.stop()
    again = replay(compile_policy(suggestion.source), PROJECT, summary.decisions, [])

    started = time.perf_counter()
    findings = lint_policy(CANDIDATE, rule_matches=summary.rule_matches)
    linted = time.perf_counter() - started
    await db.dispose()

    def plus(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return a[0] + b[0], a[1] + b[1]

    print(f"read, paged in order (baseline) {read:>10,}  {_fmt(baseline)}")
    print(f"read, streamed                  {streamed:>10,}  {_fmt(stream)}")
    print(f"folded into distinct requests   {len(summary.decisions):>10,}  {_fmt(folded)}")
    print(f"replay (read + fold + decide)   {report.decisions:>10,}  {_fmt(plus(folded, replayed))}"
          f"  (decide alone {_fmt(replayed)}; {report.newly_denied_calls:,} newly denied)")  # fmt: skip  # noqa: E501
    print(f"suggest (read + fold + suggest) {suggestion.rules:>10,} rules for "
          f"{suggestion.resources:,} resources  {_fmt(plus(folded, suggested))}; replayed "
          f"against the trail: {again.newly_denied_calls} newly denied")  # fmt: skip
    print(f"lint                            {len(findings):>10,} findings  {linted:6.3f} s")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(args.database_url, args.decisions))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.decisions))


if __name__ == "__main__":
    main()
