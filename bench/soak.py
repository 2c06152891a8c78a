"""Soak: a real ``tether up`` (SQLite, or PostgreSQL with ``--pg``) in front of the bundled
fake Anthropic API, under a fleet's mix at a steady rate for a bounded time, sampled every
10 s: RSS, open file descriptors, asyncio tasks, what the bounded in-memory structures
hold, table sizes and latency percentiles. Shows whether memory levels off.

The mix, one request in three each: Claude Code sessions (a session header; every other
request a PreToolUse hook), SDK clients without a session header (a conversation-derived
session: a new conversation, then its second turn), long sessions in a tool loop (the
history grows with tool_use/tool_result pairs). New agents and sessions arrive all the
time; sessions are killed, agents quarantined and released, keys rotated now and then.

    uv run python bench/soak.py --minutes 15 --rate 150
    uv run python bench/soak.py --sessions 1000000 --minutes 600 --rate 400   # the #29 target
    uv run python bench/soak.py --minutes 2 --rate 100 --no-write      # a quick look
    uv run python bench/soak.py --pg --minutes 10                       # on PostgreSQL
    uv run python bench/soak.py --sessions 1000000 --rate 600 --agents 300  # a fixed fleet
    uv run python bench/soak.py --sessions 1000000 --rate 700 --agents 10000 --agent-every 0.2
        # ten thousand agents in the first 43 minutes, past what the bounded caches hold

Writes its table into docs/benchmarks.md between its own markers, unless ``--no-write``,
and its plot into docs/img/soak.png when matplotlib is installed (the ``bench`` group:
``uv run --group bench python bench/soak.py ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import asyncpg
import httpx
import uvloop
from comparison.document import write_marked
from comparison.http1 import Pool, request_bytes
from comparison.load import MODEL
from comparison.processes import cpu_seconds, resident_once_mb, rss_mb
from comparison.results import load_average, tether_revision
from comparison.targets import (
    ADMIN_TOKEN,
    Lab,
    Target,
    create_postgres_database,
    start_tether,
    start_upstream,
)

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN bench/soak.py: generated, re-run the command to update -->"
END = "<!-- END bench/soak.py -->"
SESSION_HEADER = "X-Claude-Code-Session-Id"
TABLES = ("sessions", "audit_events", "spend_daily", "budget_periods", "agent_keys", "outbox")
CLAUDE_CODE_CALLS, SDK_TURNS, LOOP_CALLS = 6, 2, 40
"""Requests in each kind of session before it ends and a new one takes its place."""
LIVE_PER_KIND = 40
"""Sessions of each kind in progress at once."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/soak.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, default=15.0, help="how long to run (15)")
    parser.add_argument(
        "--sessions",
        type=int,
        default=0,
        help="stop once this many sessions have started (then --minutes is only a bound)",
    )
    parser.add_argument(
        "--table-rows",
        type=int,
        default=60,
        help="at most this many samples in the written table, evenly spread (all in --json)",
    )
    parser.add_argument("--rate", type=int, default=150, help="requests a second (150)")
    parser.add_argument(
        "--agents",
        type=int,
        default=0,
        help="stop adding agents once there are this many; 0: keep adding. "
        "A fixed fleet shows what each new agent costs apart from what each session costs",
    )
    parser.add_argument(
        "--agent-every",
        type=float,
        default=3.0,
        help="seconds between new agents (3): a fast arrival fills the caches that remember "
        "a few entries an agent early in the run, so its last third shows their bound",
    )
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="sampling period")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument(
        "--pg-dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create (and drop) the PostgreSQL database",
    )
    parser.add_argument(
        "--sessions-in-memory",
        type=int,
        default=0,
        help="TETHER_SESSIONS_IN_MEMORY for the server (default: the server's own)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "soak.png")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write every sample as JSON here")
    return parser.parse_args(argv)


# --- the workload ---------------------------------------------------------------------


@dataclass
class Agent:
    name: str
    key: str


@dataclass
class Session:
    kind: str
    agent: Agent
    ident: str
    left: int
    step: int = 0
    killed: bool = False


@dataclass
class Fleet:
    """Agents and the sessions in progress; what the load sends next."""

    agents: list[Agent]
    live: dict[str, list[Session]] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)
    quarantined: set[str] = field(default_factory=set)
    _kinds: itertools.cycle[str] = field(
        default_factory=lambda: itertools.cycle(("claude-code", "sdk", "loop"))
    )

    def next_session(self) -> Session:
        kind = next(self._kinds)
        live = self.live.setdefault(kind, [])
        live[:] = [s for s in live if s.left > 0 and not s.killed]
        if len(live) < LIVE_PER_KIND:
            live.append(self._new(kind))
        return random.choice(live)

    def _new(self, kind: str) -> Session:
        self.started[kind] += 1
        calls = {"claude-code": CLAUDE_CODE_CALLS, "sdk": SDK_TURNS, "loop": LOOP_CALLS}[kind]
        choices = [a for a in self.agents[-20:] if a.name not in self.quarantined]
        agent = random.choice(choices or self.agents)
        return Session(kind, agent, f"soak-{kind}-{uuid.uuid4().hex[:12]}", calls)

    @property
    def sessions(self) -> int:
        return sum(self.started.values())


def _message(role: str, content: object) -> dict[str, object]:
    return {"role": role, "content": content}


def request_of(session: Session) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) of the session's next request."""
    step, session.step, session.left = session.step, session.step + 1, session.left - 1
    headers = {"x-api-key": session.agent.key, "anthropic-version": "2023-06-01"}
    if session.kind == "claude-code":
        headers[SESSION_HEADER] = session.ident
        if step % 2 == 1:
            hook = {
                "session_id": session.ident,
                "transcript_path": "/tmp/soak.jsonl",
                "cwd": "/work",
                "permission_mode": "default",
                "hook_event_name": "PreToolUse",
                "tool_name": "Bash",
                "tool_input": {"command": f"pytest -k case_{step}"},
                "tool_use_id": f"toolu_{session.ident}_{step}",
            }
            hook_headers = {"Authorization": f"Bearer {session.agent.key}"}
            return "/hooks/claude-code", hook_headers, json.dumps(hook).encode()
        messages = [_message("user", f"{session.ident}: fix the flaky test, step {step}")]
    elif session.kind == "sdk":
        messages = [_message("user", f"summarise ticket {session.ident}")]
        for turn in range(step):
            messages += [
                _message("assistant", f"summary {turn}"),
                _message("user", f"and the next point ({turn})"),
            ]
    else:
        headers[SESSION_HEADER] = session.ident
        messages = [_message("user", f"{session.ident}: make the build green")]
        for turn in range(step):
            use_id = f"toolu_{turn:04d}"
            messages += [
                _message(
                    "assistant",
                    [
                        {
                            "type": "tool_use",
                            "id": use_id,
                            "name": "bash",
                            "input": {"command": f"make target_{turn}"},
                        }
                    ],
                ),
                _message(
                    "user",
                    [
                        {
                            "type": "tool_result",
                            "tool_use_id": use_id,
                            "content": f"target_{turn}: {turn} warnings",
                        }
                    ],
                ),
            ]
    body = {"model": MODEL, "max_tokens": 64, "messages": messages}
    return "/v1/messages", headers, json.dumps(body).encode()


# --- the load and the admin events ----------------------------------------------------


@dataclass
class Window:
    """What the load saw since the last sample."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    late: int = 0


ERROR_CODE = re.compile(rb'"code"\s*:\s*"([a-z_]+)"')


def refusal(status: int, body: bytes) -> str:
    """A status with tether's error code when it names one (``503 heavy_work_busy``): a
    soak's refusals are told apart after the run."""
    code = ERROR_CODE.search(body) if status >= 400 else None
    return f"{status} {code.group(1).decode()}" if code else str(status)


class Load:
    def __init__(self, target: Target, fleet: Fleet, rate: int, enough_sessions: int = 0) -> None:
        self.endpoint, self.fleet, self.rate = target.endpoint, fleet, rate
        self.enough_sessions = enough_sessions
        self.pool = Pool(target.endpoint.host, target.endpoint.port)
        self.window = Window()
        self.lock = threading.Lock()
        self.sent = 0
        self.pending: set[asyncio.Task[None]] = set()
        self.stopped_early = False
        """A signal ended the run before its sessions or minutes: what was sampled is
        still reported, marked so."""

    def take_window(self) -> Window:
        with self.lock:
            window, self.window = self.window, Window()
        return window

    async def run(self, seconds: float, stop: asyncio.Event) -> None:
        start = time.perf_counter()
        interval = 1 / self.rate
        n = 0
        while not stop.is_set() and time.perf_counter() - start < seconds:
            if self.enough_sessions and self.fleet.sessions >= self.enough_sessions:
                break
            due = start + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.5:
                with self.lock:
                    self.window.late += 1
            task = asyncio.create_task(self.one(self.fleet.next_session(), due))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            n += 1
        if self.pending:
            await asyncio.wait(self.pending, timeout=30)
        self.sent = n

    async def one(self, session: Session, due: float) -> None:
        path, headers, body = request_of(session)
        endpoint = self.endpoint
        conn = await self.pool.acquire()
        try:
            status = await conn.send(
                request_bytes(endpoint.host, endpoint.port, path, headers, body)
            )
        except Exception as exc:
            conn.close()
            status_text = type(exc).__name__
        else:
            status_text = refusal(status, conn.error_body)
            conn.error_body = b""
            self.pool.release(conn)
            if status == 423 or status == 403:
                session.killed = True
        took = (time.perf_counter() - due) * 1000
        kind = "hook" if path.startswith("/hooks") else session.kind
        with self.lock:
            self.window.statuses[status_text] += 1
            if status_text == "200":
                self.window.latencies.setdefault(kind, []).append(took)


class Operator:
    """What people do meanwhile, through the admin API: new agents, kills, quarantines and
    releases, key rotations."""

    def __init__(
        self, admin: httpx.AsyncClient, fleet: Fleet, agents: int = 0, agent_every: float = 3.0
    ) -> None:
        self.admin, self.fleet = admin, fleet
        self.agents = agents
        """Stop adding agents once the fleet has this many (0: keep adding)."""
        self.agent_every = agent_every
        self.done: Counter[str] = Counter()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._act_every_second(stop), self._add_agents(stop))

    async def _add_agents(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not 0 < self.agents <= len(self.fleet.agents):
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.agent_every)
            try:
                await self.add_agent()
            except httpx.HTTPError as exc:
                self.done[f"failed {type(exc).__name__}"] += 1

    async def add_agent(self) -> None:
        name = f"soak-agent-{len(self.fleet.agents)}"
        answer = await self.admin.post("/agents", json={"name": name, "project": "bench"})
        answer.raise_for_status()
        self.fleet.agents.append(Agent(name, answer.json()["key"]))
        self.done["new agent"] += 1

    async def _act_every_second(self, stop: asyncio.Event) -> None:
        tick = 0
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            tick += 1
            try:
                await self.act(tick)
            except httpx.HTTPError as exc:
                self.done[f"failed {type(exc).__name__}"] += 1

    async def act(self, tick: int) -> None:
        if tick % 2 == 0:
            live = [s for kind in ("claude-code", "loop") for s in self.fleet.live.get(kind, [])]
            if live:
                victim = random.choice(live)
                answer = await self.admin.post(
                    f"/sessions/{victim.ident}/kill", json={"reason": "soak"}
                )
                if answer.status_code == 200:
                    victim.killed = True
                    self.done["session killed"] += 1
        if tick % 20 == 0 and len(self.fleet.agents) > 2:
            agent = random.choice(self.fleet.agents[1:])
            await self.admin.post(f"/agents/{agent.name}/quarantine", json={"reason": "soak"})
            self.fleet.quarantined.add(agent.name)
            self.done["agent quarantined"] += 1
        if tick % 20 == 5 and self.fleet.quarantined:
            name = self.fleet.quarantined.pop()
            await self.admin.post(f"/agents/{name}/release", json={"reason": "soak"})
            self.done["agent released"] += 1
        if tick % 15 == 0:
            agent = random.choice(self.fleet.agents)
            answer = await self.admin.post(
                f"/agents/{agent.name}/keys/rotate", json={"grace_seconds": 3600}
            )
            if answer.status_code == 201:
                agent.key = answer.json()["key"]
                self.done["key rotated"] += 1


# --- sampling -------------------------------------------------------------------------


@dataclass
class Sample:
    at_s: float
    sessions: int
    rss_mb: float
    """The sum of RSS over tether's process tree (a page they share counts in each)."""
    once_mb: float | None
    """The same tree's memory with each physical page counted once (None where the page
    frames are hidden: ``comparison/resident_once.py``)."""
    tether_mb: float
    """RSS of the tether process alone (not its heavy-work worker and resource tracker)."""
    sqlite_mb: float
    """What SQLite's library holds inside the tether process (``tether_sqlite_memory_bytes``:
    page caches, prepared statements); NaN on PostgreSQL."""
    fds: int
    tasks: float
    cpu_percent: float
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    gc_ms: float
    """Time the server spent in garbage collections during the window."""
    stalls: float
    """Event-loop wake-ups more than 5 ms late during the window."""
    statuses: dict[str, int]
    in_memory: dict[str, float]
    tables: dict[str, int]
    p99_by_kind: dict[str, float]


APPEND_ONLY = ("sessions", "audit_events")
"""Tables the soak never deletes from: their highest rowid is their size, read in
microseconds, where count(*) walks millions of rows every sample on a long run."""


def _count_of(table: str) -> str:
    return (
        f"SELECT max(rowid) FROM {table}"
        if table in APPEND_ONLY
        else f"SELECT count(*) FROM {table}"
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(q / 100 * len(data)))]


def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


@dataclass(frozen=True)
class Scrape:
    """What one read of the server's /metrics says, the counters as differences since the
    previous read."""

    tasks: float
    entries: dict[str, float]
    gc_ms: float
    stalls: float
    """Event-loop wake-ups more than 5 ms late."""
    sqlite_mb: float


class Probe:
    """Reads the server: its processes (/proc), its /metrics, its tables."""

    def __init__(self, target: Target, database: str) -> None:
        self.target, self.database = target, database
        self.metrics_url = f"http://127.0.0.1:{target.endpoint.port}/metrics"
        self._cpu = (time.monotonic(), cpu_seconds(target.pids()))
        self._pauses = (0.0, 0.0)

    def cpu_percent(self) -> float:
        now, used = time.monotonic(), cpu_seconds(self.target.pids())
        (then, before), self._cpu = self._cpu, (now, used)
        return 100 * (used - before) / max(now - then, 1e-9)

    def metrics(self) -> Scrape:
        text = httpx.get(
            self.metrics_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ).text
        gc_seconds = sum(
            float(m)
            for m in re.findall(r"^tether_gc_pause_seconds_sum\{[^}]*\} (\S+)$", text, re.M)
        )
        lags = re.search(r"^tether_event_loop_lag_seconds_count (\S+)$", text, re.M)
        quick = re.search(r'^tether_event_loop_lag_seconds_bucket\{le="0.005"\} (\S+)$', text, re.M)
        stalls = float(lags.group(1)) - float(quick.group(1)) if lags and quick else float("nan")
        (gc_before, stalls_before), self._pauses = self._pauses, (gc_seconds, stalls)
        entries = {
            m.group(1): float(m.group(2))
            for m in re.finditer(
                r'^tether_in_memory_entries\{structure="(\w+)"\} (\S+)$', text, re.M
            )
        }
        tasks = re.search(r"^tether_asyncio_tasks (\S+)$", text, re.M)
        sqlite = re.search(r"^tether_sqlite_memory_bytes (\S+)$", text, re.M)
        return Scrape(
            tasks=float(tasks.group(1)) if tasks else float("nan"),
            entries=entries,
            gc_ms=(gc_seconds - gc_before) * 1000,
            stalls=stalls - stalls_before,
            sqlite_mb=float(sqlite.group(1)) / 2**20 if sqlite else float("nan"),
        )

    def tables(self) -> dict[str, int]:
        if self.database.startswith("postgresql"):
            return asyncio.run(self._pg_tables())
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as conn:
            return {t: int(conn.execute(_count_of(t)).fetchone()[0] or 0) for t in TABLES}

    async def _pg_tables(self) -> dict[str, int]:
        """PostgreSQL's own count of live rows (``n_live_tup``), not ``count(*)``: that
        walked every row each sample, a second of a core by 3 million audit rows, and
        made the run's own tail (seen in the first PostgreSQL soak)."""
        conn = await asyncpg.connect(self.database.replace("+asyncpg", ""), timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname = ANY($1)",
                list(TABLES),
            )
        finally:
            await conn.close()
        live = {row["relname"]: int(row["n_live_tup"]) for row in rows}
        return {t: live.get(t, 0) for t in TABLES}

    def sample(self, began: float, load: Load, fleet: Fleet) -> Sample:
        window = load.take_window()
        scrape = self.metrics()
        everything = [ms for values in window.latencies.values() for ms in values]
        pids = self.target.pids()
        return Sample(
            at_s=time.monotonic() - began,
            sessions=fleet.sessions,
            rss_mb=rss_mb(pids),
            once_mb=resident_once_mb(pids),
            tether_mb=rss_mb(pids[:1]),
            sqlite_mb=scrape.sqlite_mb,
            fds=open_fds(pids),
            tasks=scrape.tasks,
            cpu_percent=self.cpu_percent(),
            requests=sum(window.statuses.values()),
            p50_ms=pct(everything, 50),
            p99_ms=pct(everything, 99),
            max_ms=max(everything, default=float("nan")),
            gc_ms=scrape.gc_ms,
            stalls=scrape.stalls,
            statuses=dict(window.statuses),
            in_memory=scrape.entries,
            tables=self.tables(),
            p99_by_kind={kind: pct(v, 99) for kind, v in sorted(window.latencies.items())},
        )


# --- the report -----------------------------------------------------------------------


def slope_per_minute(samples: list[Sample], memory: Callable[[Sample], float]) -> float:
    """A memory figure's trend (least squares) in MiB a minute: one sample's swing does
    not make it."""
    xs = [s.at_s / 60 for s in samples]
    ys = [memory(s) for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0


def verdict(samples: list[Sample]) -> list[str]:
    """Does RSS level off: the last third of the run against the middle third."""
    if len(samples) < 6:
        return ["too few samples for a verdict on growth (run longer)"]
    third = len(samples) // 3
    middle, last = samples[third : 2 * third], samples[2 * third :]
    minutes = (last[-1].at_s - last[0].at_s) / 60 or 1
    sessions_per_min = (last[-1].sessions - last[0].sessions) / minutes
    fds = [s.fds for s in last]

    def level(name: str, memory: Callable[[Sample], float]) -> str:
        slope = slope_per_minute(last, memory)
        per_1000 = slope / sessions_per_min * 1000 if sessions_per_min else float("nan")
        return (
            f"{name}: peak {max(map(memory, samples)):.0f} MiB; median "
            f"{statistics.median(map(memory, middle)):.1f} MiB over the middle third, "
            f"{statistics.median(map(memory, last)):.1f} MiB over the last third; trend "
            f"over the last third {slope:+.2f} MiB/min ({per_1000:+.3f} MiB per 1,000 new "
            "sessions)"
        )

    levels = (
        ["(the page frames are hidden here: run as root to count each page once)"]
        if any(s.once_mb is None for s in samples)
        else [level("tether's process tree, each page counted once", _once)]
    )
    if not any(math.isnan(s.sqlite_mb) for s in samples):
        levels.append(level("of which SQLite's own memory", lambda s: s.sqlite_mb))
    return [
        *levels,
        level("the tether process alone (RSS)", lambda s: s.tether_mb),
        level("the tree's RSS summed (shared pages once per process)", lambda s: s.rss_mb),
        f"open file descriptors over the last third: {min(fds)} to {max(fds)} (they follow "
        "the requests in flight, `tasks`)",
        f"P99 per window over the last third: "
        f"{min(s.p99_ms for s in last):.1f} to {max(s.p99_ms for s in last):.1f} ms",
    ]


def _once(sample: Sample) -> float:
    return sample.once_mb if sample.once_mb is not None else float("nan")


def render(args: argparse.Namespace, samples: list[Sample], facts: dict[str, object]) -> str:
    structures = sorted({k for s in samples for k in s.in_memory})
    lines = [
        "## Soak: memory over a fleet's day",
        "",
        f"`{facts['command']}` — {facts['database']}, {args.rate} req/s for "
        f"{(samples[-1].at_s if samples else 0) / 60:.1f} min"
        f"{' (stopped early by a signal)' if facts.get('stopped_early') else ''}; "
        f"{facts['revision']}; load average "
        f"{facts['load_before']} before, {facts['load_after']} after (a shared machine).",
        "",
        f"Mix (one request in three each): Claude Code sessions ({CLAUDE_CODE_CALLS} requests, "
        f"every other one a PreToolUse hook), SDK clients without a session header "
        f"({SDK_TURNS}-turn conversations, a conversation-derived session each), long sessions "
        f"in a tool loop ({LOOP_CALLS} calls, the history growing); {LIVE_PER_KIND} of each in "
        f"progress at once, a new one as soon as one ends. Meanwhile: {facts['operator']}.",
        "",
        f"**{facts['sessions']:,} sessions** and {facts['requests']:,} requests in the run "
        f"({facts['statuses']}).",
        "",
        *[f"- {line}" for line in facts["verdict"]],  # type: ignore[attr-defined]
        "",
        "| t (s) | sessions | tree MiB, pages once | tether RSS MiB | SQLite MiB "
        "| tree RSS MiB, summed "
        "| fds | tasks | CPU % | req | P50 ms | P99 ms | max ms "
        "| GC ms | loop stalls > 5 ms "
        "| " + " | ".join(structures) + " | " + " | ".join(f"rows: {t}" for t in TABLES) + " |",
        "|" + "---:|" * (15 + len(structures) + len(TABLES)),
    ]
    for s in _spread(samples, args.table_rows):
        lines.append(
            f"| {s.at_s:.0f} | {s.sessions:,} | {_once(s):.0f} | {s.tether_mb:.0f} "
            f"| {s.sqlite_mb:.1f} | {s.rss_mb:.0f} | {s.fds} | {s.tasks:.0f} "
            f"| {s.cpu_percent:.0f} | {s.requests:,} | {s.p50_ms:.1f} | {s.p99_ms:.1f} "
            f"| {s.max_ms:.0f} | {s.gc_ms:.0f} | {s.stalls:.0f} | "
            + " | ".join(f"{s.in_memory.get(k, 0):,.0f}" for k in structures)
            + " | "
            + " | ".join(f"{s.tables.get(t, 0):,}" for t in TABLES)
            + " |"
        )
    shown = len(_spread(samples, args.table_rows))
    if shown < len(samples):
        lines += ["", f"({shown} of the run's {len(samples)} samples, evenly spread.)"]
    if facts.get("plot"):
        lines += ["", f"![RSS, sessions and P99 over the soak run]({facts['plot']})"]
    lines += ["", *facts["notes"]]  # type: ignore[misc]
    return "\n".join(lines)


def _spread(samples: list[Sample], rows: int) -> list[Sample]:
    """At most ``rows`` samples, evenly spread, the last always among them."""
    if rows <= 0 or len(samples) <= rows:
        return samples
    step = len(samples) / rows
    picked = [samples[int(i * step)] for i in range(rows - 1)]
    return [*picked, samples[-1]]


def plot(samples: list[Sample], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [s.at_s / 60 for s in samples]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(minutes, [_once(s) for s in samples], label="tree, each page once")
    top.plot(minutes, [s.tether_mb for s in samples], label="tether process (RSS)")
    top.plot(minutes, [s.rss_mb for s in samples], label="tree, RSS summed", linestyle=":")
    top.set_ylabel("memory (MiB)")
    top.legend(loc="lower right")
    sessions = top.twinx()
    sessions.plot(minutes, [s.sessions for s in samples], color="grey", linestyle="--")
    sessions.set_ylabel("sessions started")
    bottom.plot(minutes, [s.p99_ms for s in samples], label="P99")
    bottom.plot(minutes, [s.p50_ms for s in samples], label="P50")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("minutes")
    bottom.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return True


# --- the run --------------------------------------------------------------------------


def _stop_early_on_signal(load: Load, stop: asyncio.Event) -> None:
    """The first Ctrl-C or SIGTERM ends the load and reports what was sampled (an hour of
    samples is not thrown away); a second one stops at once."""

    def stop_early() -> None:
        if stop.is_set():
            raise KeyboardInterrupt("a second signal")
        load.stopped_early = True
        stop.set()
        print("stopping early: the samples so far will be reported", flush=True)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_early)


async def drive(
    target: Target, probe: Probe, fleet: Fleet, args: argparse.Namespace
) -> tuple[list[Sample], Load, Operator]:
    stop = asyncio.Event()
    load = Load(target, fleet, args.rate, args.sessions)
    samples: list[Sample] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{target.endpoint.port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    ) as admin:
        operator = Operator(admin, fleet, args.agents, args.agent_every)
        acting = asyncio.create_task(operator.run(stop))
        loading = asyncio.create_task(load.run(args.minutes * 60, stop))
        _stop_early_on_signal(load, stop)
        began = time.monotonic()
        try:
            while not loading.done():
                with suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(loading), args.sample_seconds)
                sample = await asyncio.to_thread(probe.sample, began, load, fleet)
                samples.append(sample)
                print(
                    f"  {sample.at_s:6.0f} s  sessions {sample.sessions:8,}  once "
                    f"{_once(sample):6.1f} MiB  tether {sample.tether_mb:6.1f}  SQLite "
                    f"{sample.sqlite_mb:5.1f}  sum "
                    f"{sample.rss_mb:6.1f}  fds {sample.fds:4}  tasks {sample.tasks:4.0f}  "
                    f"CPU {sample.cpu_percent:3.0f} %  {sample.requests:6,} req  P50/P99 "
                    f"{sample.p50_ms:6.1f}/{sample.p99_ms:7.1f} ms  {sample.statuses}",
                    flush=True,
                )
        finally:
            stop.set()
            await asyncio.gather(acting, loading, return_exceptions=True)
            load.pool.close()
    return samples, load, operator


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="tether-soak-"))
    load_before = load_average()
    revision = tether_revision(REPO)
    extra = (
        {"TETHER_SESSIONS_IN_MEMORY": str(args.sessions_in_memory)}
        if args.sessions_in_memory
        else {}
    )
    extra["TETHER_LOG_LEVEL"] = "WARNING"
    print(f"soak: {args.rate} req/s for {args.minutes:g} min; logs in {workdir}", flush=True)
    with ExitStack() as stack:
        lab = Lab(workdir, stack)
        start_upstream(lab)
        if args.pg:
            database, _ = create_postgres_database(lab, args.pg_dsn)
            label = "PostgreSQL"
        else:
            database = ""
            label = "SQLite"
        target = start_tether(lab, "tether-soak", "tether soak", database, extra_env=extra)
        if not database:
            database = str(workdir / "tether-soak" / "tether.db")
        key = target.endpoint.headers["x-api-key"]
        fleet = Fleet([Agent("bench-agent", key)])
        probe = Probe(target, database)
        samples, load, operator = uvloop.run(drive(target, probe, fleet, args))
    shutil.rmtree(workdir, ignore_errors=True)
    statuses: Counter[str] = Counter()
    for s in samples:
        statuses.update(s.statuses)
    options = [a for a in argv if a not in ("--no-write",)]
    facts: dict[str, object] = {
        "command": "uv run python bench/soak.py " + " ".join(options),
        "database": label,
        "revision": revision,
        "load_before": load_before,
        "load_after": load_average(),
        "stopped_early": load.stopped_early,
        "sessions": fleet.sessions,
        "requests": sum(statuses.values()),
        "statuses": ", ".join(f"{code}: {n:,}" for code, n in statuses.most_common()),
        "operator": ", ".join(f"{what} {n}" for what, n in operator.done.most_common()),
        "verdict": verdict(samples),
        "notes": [
            "Columns: `sessions` started so far; memory of tether's process tree (the "
            "server, its heavy-work worker and multiprocessing's resource tracker) with each "
            "physical page counted once (`bench/comparison/resident_once.py`: the union of "
            "their resident page frames), the server's own RSS, what SQLite's library holds in "
            "it (`tether_sqlite_memory_bytes`: page caches, prepared statements; part of its "
            "RSS), and the tree's RSS summed "
            "(which counts every shared library once per process); open file descriptors of "
            "the tether process (`/proc`); `tasks`: `tether_asyncio_tasks`; the next columns are "
            "`tether_in_memory_entries` by structure (bounded by `TETHER_SESSIONS_IN_MEMORY`); "
            "GC ms: time in garbage collections in the window (`tether_gc_pause_seconds`); loop "
            "stalls: event-loop wake-ups more than 5 ms late (`tether_event_loop_lag_seconds`), "
            "which delay every request at once; "
            "the last are row counts. P50/P99/max: answered requests (200) of each 10 s window, "
            "from their scheduled time (open loop), the fake upstream answering at once; 423s "
            "are killed or quarantined sessions, refused as they should be.",
        ],
    }
    if not args.no_write and samples and plot(samples, args.plot):
        facts["plot"] = os.path.relpath(args.plot, args.out.parent)
    section = render(args, samples, facts)
    print("\n" + section)
    if args.json is not None:
        args.json.write_text(json.dumps([s.__dict__ for s in samples], indent=1))
    if not args.no_write:
        write_marked(args.out, section, BEGIN, END)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt as stopped:
        print(f"\ninterrupted ({stopped or 'Ctrl-C'}); every server was stopped", file=sys.stderr)
        sys.exit(130)
