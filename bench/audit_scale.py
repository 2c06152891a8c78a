"""The audit trail at scale: a fleet of agents over a month, on SQLite and PostgreSQL.

Generates ``--events`` realistic, hash-chained events (10 projects, 200 agents, sessions
of decisions, completions with usage and cost, tool uses and hook decisions over 30 days),
bulk-loads them (COPY on PostgreSQL, executemany in large transactions on SQLite) into a
database migrated to the current schema, then times what operators ask of it:

- the 30-minute window for one agent (``AuditStore.query``, as ``tether audit query``)
- a session replay (paged by ``after_seq``, as ``tether audit replay``)
- spend by day for one project over the month (from the completion events)
- ``audit verify`` throughput (the whole chain walked and re-hashed)
- export throughput (pages serialised as ``/audit/export`` does)

    uv run python bench/audit_scale.py --events 1000000 [--database-url postgresql+asyncpg://…]

Without ``--database-url`` it runs on a temporary SQLite file. Needs about 700 bytes of disk
per event on SQLite (indexes included) and about 1 KB on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tether.audit.chain import GENESIS, ChainHead, link
from tether.audit.table import AuditStore
from tether.store.database import Database
from tether.store.migrate import upgrade

PROJECTS, AGENTS, DAYS = 10, 200, 30
LOAD_CHUNK = 100_000
EXPORT_PAGE = 5000
MONTH_START_MS = 1_790_000_000_000
MODELS = ("claude-sonnet-5", "claude-haiku-5", "claude-opus-5")
TOOLS = ("Bash", "Edit", "Read", "Write", "Grep")


def session_events(
    rng: random.Random, agent: int, session: str, start: int
) -> Iterator[tuple[Any, ...]]:
    """One session: model calls (decision, completion, tool uses) and hook decisions."""
    project = f"p{agent % PROJECTS:02d}"
    agent_id, name = f"a{agent:04d}", f"agent-{agent}"

    def row(
        event_id: str,
        ts: int,
        source: str,
        action: str,
        resource: str,
        result: str,
        code: str | None,
        reason: str,
        attributes: dict[str, Any],
    ) -> tuple[Any, ...]:
        attributes_json = orjson.dumps(attributes).decode()
        return (event_id, ts, project, agent_id, name, session, f"agent:{name}", source,
                action, resource, result, code, reason, attributes_json)  # fmt: skip

    ts = start
    for turn in range(rng.randint(5, 40)):
        model = rng.choice(MODELS)
        ts += rng.randint(2_000, 30_000)
        decision = f"e{session}-{turn}-d"
        yield row(decision, ts, "anthropic", "model:messages", f"anthropic:model/{model}",
                  "allow", None, "no stage objected",
                  {"model": model, "stream": True, "max_tokens": 8192})  # fmt: skip
        ts += rng.randint(1_000, 20_000)
        usage = {
            "input_tokens": rng.randint(50, 4000),
            "output_tokens": rng.randint(20, 2000),
            "cache_read_input_tokens": rng.randint(0, 60000),
            "cache_creation_input_tokens": 0,
        }
        completion = {
            "decision_event": decision,
            "model": model,
            "status": 200,
            "latency_ms": 1234.5,
            "usage": usage,
            "cost_usd": round(rng.uniform(0.001, 0.2), 6),
        }
        yield row(f"e{session}-{turn}-c", ts, "anthropic", "model:messages:completed",
                  f"anthropic:model/{model}", "ok", None, "", completion)  # fmt: skip
        if rng.random() < 0.6:
            tool = rng.choice(TOOLS)
            use = f"toolu_{session}_{turn}"
            yield row(f"e{session}-{turn}-u", ts, "anthropic", f"tool_use:{tool}", tool,
                      "emitted", None, "", {"tool_use_id": use, "tool": tool})  # fmt: skip
            ts += rng.randint(100, 2_000)
            denied = rng.random() < 0.05
            yield row(f"e{session}-{turn}-h", ts, "claude_code_hook", f"file:{tool}",
                      f"/srv/app/src/{turn}.py", "deny" if denied else "allow",
                      "policy_denied" if denied else None,
                      "forbidden by policy" if denied else "permitted by policy",
                      {"tool": tool, "tool_use_id": use})  # fmt: skip


def fleet_events(total: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """Sessions spread over the month, interleaved by start time (rows in chain order)."""
    rng = random.Random(seed)
    made, number = 0, 0
    span = DAYS * 86_400_000
    per_session = 70
    sessions = max(1, total // per_session)
    starts = sorted(rng.randrange(span) for _ in range(sessions))
    while made < total:
        for start in starts:
            number += 1
            for row in session_events(
                rng, rng.randrange(AGENTS), f"s{number:08d}", MONTH_START_MS + start
            ):
                yield row
                made += 1
                if made >= total:
                    return


def chained(total: int) -> Iterator[list[tuple[Any, ...]]]:
    head = ChainHead(0, GENESIS)
    chunk: list[tuple[Any, ...]] = []
    for row in fleet_events(total):
        chunk.append(row)
        if len(chunk) == LOAD_CHUNK:
            linked, head = link(chunk, head)
            yield linked
            chunk = []
    if chunk:
        yield link(chunk, head)[0]


COLUMNS = ("id", "ts", "project_id", "agent_id", "agent_name", "session_id", "actor", "source",
           "action", "resource", "result", "code", "reason", "attributes", "seq", "prev_hash",
           "hash")  # fmt: skip


async def load(url: str, total: int) -> tuple[float, ChainHead]:
    started = time.perf_counter()
    last: tuple[Any, ...] = ()
    if make_url(url).get_backend_name() == "postgresql":
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            for chunk in chained(total):
                await conn.copy_records_to_table("audit_events", records=chunk, columns=COLUMNS)
                last = chunk[-1]
            await conn.execute("UPDATE audit_chain SET seq = $1, hash = $2", last[-3], last[-1])
            await conn.execute("ANALYZE audit_events")
        finally:
            await conn.close()
    else:
        sqlite = sqlite3.connect(make_url(url).database or "")
        sqlite.execute("PRAGMA journal_mode=WAL")
        sqlite.execute("PRAGMA synchronous=NORMAL")
        insert = (
            f"INSERT INTO audit_events ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        for chunk in chained(total):
            with sqlite:
                sqlite.executemany(insert, chunk)
            last = chunk[-1]
        with sqlite:
            sqlite.execute("UPDATE audit_chain SET seq = ?, hash = ?", (last[-3], last[-1]))
        sqlite.execute("ANALYZE")
        sqlite.close()
    return time.perf_counter() - started, ChainHead(last[-3], last[-1])


def timed_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples):7.1f} ms, max {max(samples):7.1f} ms"


async def measure(db: Database, total: int, throughput: bool = True) -> dict[str, str]:
    store = AuditStore(db)
    rng = random.Random(11)
    results: dict[str, str] = {}

    window = []
    for _ in range(20):
        agent = f"a{rng.randrange(AGENTS):04d}"
        since = MONTH_START_MS + rng.randrange(DAYS * 86_400_000)
        started = time.perf_counter()
        await store.query(agent_id=agent, since_ms=since, until_ms=since + 1_800_000, limit=500)
        window.append((time.perf_counter() - started) * 1000)
    results["30-minute window, one agent"] = timed_ms(window)

    async with db.read() as conn:
        sessions = [r[0] for r in await conn.execute(text(
            "SELECT session_id FROM audit_events WHERE seq IN (:a, :b, :c, :d, :e)"),
            {k: max(1, int(total * f)) for k, f in zip("abcde", (0.1, 0.3, 0.5, 0.7, 0.9), strict=True)})]  # fmt: skip  # noqa: E501
    replay = []
    for session in sessions:
        started = time.perf_counter()
        after, events = 0, 0
        while True:
            page = await store.query(session_id=session, after_seq=after, limit=1000)
            events += len(page)
            if len(page) < 1000:
                break
            after = page[-1]["seq"]
        replay.append((time.perf_counter() - started) * 1000)
    results["session replay"] = timed_ms(replay) + f" ({events} events in the last)"

    cost = (
        "(attributes::json->>'cost_usd')::float"
        if db.is_postgres
        else "json_extract(attributes, '$.cost_usd')"
    )
    day = "floor(ts / 86400000)"
    spend = text(
        f"SELECT {day} AS day, sum({cost}) FROM audit_events WHERE project_id = :p "
        f"AND action = 'model:messages:completed' AND ts >= :s AND ts < :u GROUP BY {day}"
    )
    started = time.perf_counter()
    async with db.read() as conn:
        days = (await conn.execute(spend, {"p": "p03", "s": MONTH_START_MS,
                                           "u": MONTH_START_MS + DAYS * 86_400_000})).all()  # fmt: skip  # noqa: E501
    results["spend by day, one project, a month"] = (
        f"{(time.perf_counter() - started) * 1000:7.1f} ms ({len(days)} days)"
    )

    if not throughput:
        return results
    started = time.perf_counter()
    report = await store.verify()
    seconds = time.perf_counter() - started
    assert report.intact, report.first_break
    results["audit verify"] = f"{report.checked / seconds:,.0f} events/s ({seconds:.1f} s)"

    started = time.perf_counter()
    after, exported, size = 0, 0, 0
    while True:
        rows = await store.query(after_seq=after, limit=EXPORT_PAGE)
        if not rows:
            break
        size += len(b"".join(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS) + b"\n" for r in rows))
        exported += len(rows)
        after = rows[-1]["seq"]
    seconds = time.perf_counter() - started
    results["export"] = f"{exported / seconds:,.0f} events/s ({size / seconds / 1e6:.0f} MB/s)"
    return results


async def run(url: str, total: int, throughput: bool) -> None:
    db = Database(url)
    await upgrade(db)
    load_seconds, head = await load(url, total)
    print(f"{make_url(url).get_backend_name()}: loaded {total:,} events in {load_seconds:.0f} s "
          f"({total / load_seconds:,.0f}/s), head #{head.seq}")  # fmt: skip
    for name, figure in (await measure(db, total, throughput)).items():
        print(f"  {name:<38} {figure}")
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate")
    parser.add_argument("--database-url", help="an EMPTY database (default: temporary SQLite)")
    parser.add_argument(
        "--no-throughput",
        action="store_true",
        help="skip verify and export (events per second: measure them on a smaller run)",
    )
    args = parser.parse_args()
    throughput = not args.no_throughput
    if args.database_url:
        asyncio.run(run(args.database_url, args.events, throughput))
        return
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as workdir:
        asyncio.run(run(f"sqlite+aiosqlite:///{workdir}/audit.db", args.events, throughput))


if __name__ == "__main__":
    main()
