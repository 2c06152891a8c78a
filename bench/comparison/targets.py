"""The servers compared, each started on a free loopback port in front of the one fake
upstream: what the load generator sends them and which processes' CPU and memory count."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path

import asyncpg
import httpx
from harness import free_port

from comparison import litellm_proxy
from comparison.load import MODEL, Endpoint
from comparison.processes import (
    ChangingTreeCpu,
    Server,
    cpu_seconds,
    main_thread_cpu_seconds,
    process_tree,
    rss_mb,
)
from tether.config import Settings
from tether.fakes.bedrock import BEDROCK_KEY

UPSTREAM_KEY = "sk-ant-bench-upstream"
GCP_KEY = "gcp-key.json"
PG_HELPERS = ("walwriter", "checkpointer", "background writer")
ADMIN_TOKEN = "tta_bench_compare_admin_token_0123456789abcdef"
ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}
NEW_SESSION_WARM_REQUESTS = (
    next(f.default for f in fields(Settings) if f.name == "sessions_in_memory") * 6 // 5
)
"""A fifth more new sessions than tether keeps in memory by default: its caches full."""
HERE = Path(__file__).resolve().parent

POLICY = """\
@id("dev-buckets")
permit(principal in Project::"bench", action in Action::"s3:*", resource)
when { resource.arn like "arn:aws:s3:::dev-*" };

permit(principal, action == Action::"file:Write", resource)
when { resource.tags.env == "dev" };

@reason("production is off limits")
forbid(principal, action, resource) when { resource.tags.env == "prod" };
"""
"""The README's example policy: its ``forbid`` rule means every model call is evaluated."""

TETHER_CONTROLS = (
    "**tether, every run**: `tether up` (one process), every control on: the agent's key "
    "(identity); a session (`X-Claude-Code-Session-Id`, a new one each phase; without the "
    "header one per conversation, here one per call); the guards at their defaults (repeat, "
    "tool repeat, retries, no progress, circuit breaker); the README's Cedar policy, whose "
    "`forbid` rule makes every model call evaluated; a daily project budget and a "
    "per-session limit, reserved and settled on every call; the hash-chained audit trail, "
    "durable before each answer (SQLite `synchronous=FULL`, the default)"
)


@dataclass
class Target:
    """A started server under test."""

    key: str
    label: str
    endpoint: Endpoint
    measured: list[Server]
    """The processes whose CPU and memory are the server's (not the upstream's)."""
    extra_cpu: dict[str, Callable[[], float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    check: Callable[[], str] | None = None
    """After the load: a line showing the controls did their work (spend, audit events)."""
    warm_requests: int = 0
    """Requests to serve before any is measured: a server that starts a session every
    call is measured once it holds as many sessions in memory as it ever will, evicting
    one for each it starts, as a fleet's server does all day."""

    def pids(self) -> list[int]:
        return [pid for server in self.measured for pid in process_tree(server.pid)]

    def probe(self) -> dict[str, float]:
        pids = self.pids()
        cpu = {"server": cpu_seconds(pids), "main thread": main_thread_cpu_seconds(pids)}
        cpu.update({name: read() for name, read in self.extra_cpu.items()})
        return cpu

    def rss_mb(self) -> float:
        return rss_mb(self.pids())


@dataclass
class Lab:
    """Where servers are started: a scratch directory, and a stack that stops all of them."""

    workdir: Path
    stack: ExitStack
    upstream_url: str = ""
    say: Callable[[str], None] = print

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Server:
        server = Server(name, argv, self.workdir / f"{name}.log", env)
        self.stack.callback(server.stop)
        return server


def start_upstream(lab: Lab) -> Target:
    """The fake Anthropic API (uvloop), shared by every target; also the "direct" target.
    It serves the fake Bedrock and Vertex too (their service account key in the lab)."""
    port = free_port()
    server = lab.start(
        "upstream",
        [sys.executable, str(HERE / "upstream.py"), "--port", str(port),
         "--api-key", UPSTREAM_KEY, "--gcp-key-out", str(lab.workdir / GCP_KEY),
         "--trust-signatures"],
    )  # fmt: skip
    server.wait_ready(f"http://127.0.0.1:{port}/", 30)
    lab.upstream_url = f"http://127.0.0.1:{port}"
    return Target(
        "direct",
        "upstream directly",
        Endpoint("127.0.0.1", port, {"x-api-key": UPSTREAM_KEY, **ANTHROPIC_VERSION}),
        [server],
        notes=["the fake Anthropic API itself (aiohttp on uvloop): the baseline"],
    )


def start_passthrough(lab: Lab, python: str = sys.executable, ready_seconds: float = 30) -> Target:
    """``python``: the interpreter to run it with (a wrapper that runs it under a tool)."""
    port = free_port()
    server = lab.start(
        "passthrough",
        [python, str(HERE / "passthrough.py"),
         "--port", str(port), "--upstream", lab.upstream_url],
    )  # fmt: skip
    server.wait_ready(f"http://127.0.0.1:{port}/healthz", ready_seconds)
    return Target(
        "passthrough",
        "bare aiohttp pass-through",
        Endpoint("127.0.0.1", port, {"x-api-key": UPSTREAM_KEY, **ANTHROPIC_VERSION}),
        [server],
        notes=["`bench/comparison/passthrough.py`: relays and streams back, no controls"],
    )


def start_tether(
    lab: Lab,
    name: str,
    label: str,
    database_url: str = "",
    session_header: bool = True,
    session_budget: bool = True,
    wire: str = "messages",
    extra_env: dict[str, str] | None = None,
    up_args: tuple[str, ...] = (),
    python: str = sys.executable,
    ready_seconds: float = 60,
) -> Target:
    """``tether up`` with every control on, configured through the admin API; ``wire``:
    the door the load goes through (``messages``, ``bedrock``, ``converse``, ``vertex``);
    ``extra_env``: more ``TETHER_*`` settings; ``up_args``: more ``tether up`` options;
    ``python``: the interpreter to run it with (a wrapper that runs it under a tool);
    ``session_budget``: False leaves out the per-session budget (what it costs, measured)."""
    port = free_port()
    data = lab.workdir / name
    data.mkdir()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env = {
        **inherited,
        "TETHER_DATA_DIR": str(data),
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_ANTHROPIC_BASE_URL": lab.upstream_url,
        "TETHER_HOST": "127.0.0.1",
        "TETHER_PORT": str(port),
    }
    if database_url:
        env["TETHER_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    server = lab.start(name, [python, "-m", "tether.cli", "up", *up_args], env)
    server.wait_ready(f"http://127.0.0.1:{port}/healthz", ready_seconds)
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    lab.stack.callback(admin.close)
    admin.post("/projects", json={"name": "bench"}).raise_for_status()
    admin.put("/projects/bench/policy", json={"source": POLICY}).raise_for_status()
    admin.put(
        "/projects/bench/credentials/anthropic", json={"secret": UPSTREAM_KEY}
    ).raise_for_status()
    if wire in ("bedrock", "converse"):
        admin.put(
            "/projects/bench/aws",
            json={
                "access_key_id": BEDROCK_KEY[0],
                "secret_access_key": BEDROCK_KEY[1],
                "endpoint_url": lab.upstream_url,
                "account_id": "123456789012",
            },
        ).raise_for_status()
    if wire == "vertex":
        key_file = json.loads((lab.workdir / GCP_KEY).read_text())
        admin.put(
            "/projects/bench/gcp",
            json={"service_account": key_file, "endpoint_url": lab.upstream_url},
        ).raise_for_status()
    for period in ("daily", "session") if session_budget else ("daily",):
        admin.put(
            "/budgets", json={"project": "bench", "period": period, "limit_usd": 1_000_000}
        ).raise_for_status()
    key = admin.post("/agents", json={"name": "bench-agent", "project": "bench"}).json()["key"]

    def check() -> str:
        budgets = admin.get("/budgets", params={"project": "bench"}).json()
        spent = max((b["spent_usd"] or 0.0) for b in budgets)
        metrics = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        ).text
        events = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("tether_events_total{")
        )
        sessions = len(admin.get("/sessions", params={"limit": "1000"}).json())
        return (
            f"after the load: ${spent:.2f} spent in the project budget, {events:,.0f} audit "
            f"events, {sessions}{'+' if sessions >= 1000 else ''} sessions"
        )

    return Target(
        name,
        label,
        Endpoint(
            "127.0.0.1",
            port,
            {"x-api-key": key, **ANTHROPIC_VERSION},
            "X-Claude-Code-Session-Id" if session_header else None,
            wire=wire,
        ),
        [server],
        check=check,
        warm_requests=0 if session_header else NEW_SESSION_WARM_REQUESTS,
    )


def create_postgres_database(lab: Lab, admin_dsn: str) -> tuple[str, Callable[[], float] | None]:
    """A fresh database (dropped at the end) and a reader of the CPU PostgreSQL spends on it
    (its backends, and the WAL writer, checkpointer and background writer), None where the
    server is not a process on this machine."""
    name = f"tether_bench_{uuid.uuid4().hex[:10]}"

    async def create() -> int | None:
        """Creates the database; returns the server's main process id while this session's
        backend (its child) is alive to be asked, None where that is not visible here."""
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            with suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
                return int(stat[1])
            return None
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    postmaster = asyncio.run(create())
    lab.stack.callback(lambda: asyncio.run(drop()))
    reader: Callable[[], float] | None = None
    if postmaster is not None:

        def ours(process_title: str) -> bool:
            return f" {name} " in process_title or any(h in process_title for h in PG_HELPERS)

        reader = ChangingTreeCpu(postmaster, ours)
        lab.stack.callback(reader.close)
    server = re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", admin_dsn.rsplit("/", 1)[0])
    return f"{server}/{name}", reader


def start_tether_postgres(lab: Lab, admin_dsn: str, workers: int = 1) -> Target:
    """``workers`` > 1: ``tether up --workers N`` with the guards' memory in Redis
    (``TETHER_REDIS_URL``, default the local server's database 0, under a prefix of its
    own), the shape a deployment takes for more than one core's worth of calls."""
    url, pg_cpu = create_postgres_database(lab, admin_dsn)
    if workers > 1:
        redis = os.environ.get("TETHER_REDIS_URL", "redis://127.0.0.1:6379/0")
        target = start_tether(
            lab,
            "tether-pg-workers",
            f"tether, every control on, PostgreSQL, {workers} workers",
            url,
            extra_env={
                "TETHER_REDIS_URL": redis,
                "TETHER_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            },
            up_args=("--workers", str(workers)),
        )
        target.notes.append(
            f"`tether up --workers {workers}`: {workers} processes on one port, the guards' "
            "memory in Redis (whose CPU is not counted)"
        )
    else:
        target = start_tether(lab, "tether-pg", "tether, every control on, PostgreSQL", url)
    if pg_cpu is not None:
        target.extra_cpu["postgres"] = pg_cpu
        target.notes.append(
            "PostgreSQL's own CPU (the bench database's backends, and the WAL writer, "
            "checkpointer and background writer, which other users of the server share) is "
            "counted apart"
        )
    else:
        target.notes.append("PostgreSQL is not a process on this machine: its CPU is not counted")
    return target


def start_litellm(lab: Lab, venv: Path, version: str) -> Target:
    executable = litellm_proxy.ensure_installed(venv, version, lab.say)
    installed = litellm_proxy.installed_version(venv) or version
    port = free_port()
    config = lab.workdir / "litellm.yaml"
    litellm_proxy.write_config(config, MODEL, lab.upstream_url, UPSTREAM_KEY)
    server = lab.start("litellm", litellm_proxy.argv(executable, config, port), litellm_proxy.env())
    try:
        server.wait_ready(f"http://127.0.0.1:{port}/health/liveliness", 180)
    except RuntimeError as exc:
        raise litellm_proxy.Unavailable(str(exc)) from exc
    return Target(
        "litellm",
        f"LiteLLM {installed} proxy, no database",
        Endpoint("127.0.0.1", port, {"x-api-key": litellm_proxy.MASTER_KEY, **ANTHROPIC_VERSION}),
        [server],
        notes=[
            f"LiteLLM {installed}, `--num_workers 1`, `/v1/messages` to the same upstream, "
            "master key only, **no database: it keeps no spend and cannot enforce a budget** "
            "(its database mode needs an engine download an offline machine cannot make)"
        ],
    )
