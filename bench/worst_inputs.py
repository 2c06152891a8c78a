"""The worst inputs for each parser on the request path, from 10 clients at once, while
``/healthz`` and a session kill (``POST /sessions/{id}/kill``, what ``tether sessions
kill`` calls) are timed. Every parser must stay linear and bounded, so neither should
wait on them: the target is P99 < 50 ms.

The same run first has the same clients send a trivial hook call (``ls``) for as long:
that baseline is what one saturated process costs per request, so what the worst inputs
add on top of it is the parsers' share.

Starts ``tether up`` (SQLite, a fresh data dir) as a real process and drives it over HTTP.
With ``--before SRC`` (another checkout's ``src``), the same run first measures a server
started from that code, then this one, so both meet the same machine load; ``--rounds``
alternates them. The server's CPU time per request (its worker processes included) is
printed too: on a shared machine it is the steadier figure.

    uv run python bench/worst_inputs.py [--seconds 20] [--clients 10] [--before SRC]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, pct, report, wait_http

ADMIN = "tta_worst-inputs-bench-token-0123456789"
DEPTH = 20_000


def _hook(command: str | None = None, **tool: Any) -> dict[str, Any]:
    name, tool_input = ("Bash", {"command": command}) if command is not None else tool.popitem()
    return {
        "session_id": "worst-inputs",
        "cwd": "/home/dev/app",
        "hook_event_name": "PreToolUse",
        "tool_name": name,
        "tool_input": tool_input,
        "tool_use_id": "toolu_worst",
        "permission_mode": "bypassPermissions",
        "transcript_path": "/tmp/t.jsonl",
    }


def trivial_input() -> dict[str, tuple[str, bytes]]:
    """The baseline: a hook call that every parser answers at once."""
    import orjson

    return {"hook: ls": ("/hooks/claude-code", orjson.dumps(_hook("ls")))}


def worst_inputs() -> dict[str, tuple[str, bytes]]:
    """name → (path, JSON body): each built to make one parser work hardest."""
    import orjson

    psql = "; ".join(f"delete from t{i} where id = {i}" for i in range(99))
    aws_args = " ".join(f"--tag Key=k{i},Value=v{i}" for i in range(1_500))
    deep = "[" * DEPTH + "]" * DEPTH
    bodies: dict[str, tuple[str, Any]] = {
        "shell: 5,000 pipes (30 KB)": ("/hooks/claude-code", _hook("echo a" + " | cat" * 5_000)),
        "shell: 2,700 pipes (16 KB, parsed)": (
            "/hooks/claude-code",
            _hook("echo a" + " | cat" * 2_700),
        ),
        "shell: 99 pipes of unknown programs": (
            "/hooks/claude-code",
            _hook(" | ".join(f"prog{i} --x" for i in range(99))),
        ),
        "redactor: 16 KB of a.a.a.": ("/hooks/claude-code", _hook("echo " + "a." * 8_000)),
        "redactor: 16 KB of dashes": ("/hooks/claude-code", _hook("echo " + "-" * 16_000 + "!")),
        "sql: 99 statements": ("/hooks/claude-code", _hook(f'psql -c "{psql}"')),
        "aws cli: 1,500 options (30 KB)": (
            "/hooks/claude-code",
            _hook(f"aws s3api put-bucket-tagging --bucket b {aws_args}"),
        ),
        "hook json: 1 MB Write": (
            "/hooks/claude-code",
            _hook(Write={"file_path": "/home/dev/app/x", "content": "x=" * 500_000}),
        ),
        "hook json: 1 MB of small objects": (
            "/hooks/claude-code",
            _hook(
                Write={
                    "file_path": "/home/dev/app/x",
                    "content": "x",
                    "items": [{"k": n % 10} for n in range(110_000)],
                }
            ),
        ),
        "cedar: 64 KB resource": (
            "/v1/authorize",
            {"session_id": "worst", "action": "s3:GetObject", "resource": "arn:" + "a" * 65_000},
        ),
    }
    out = {name: (path, orjson.dumps(body)) for name, (path, body) in bodies.items()}
    out["json: 20,000-deep array"] = (
        "/v1/authorize",
        b'{"session_id":"worst","action":"x:Y","resource":"r","context":' + deep.encode() + b"}",
    )
    return out


async def attack(
    url: str, key: str, inputs: dict[str, tuple[str, bytes]], stop: float, seen: Counter[str]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in inputs}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for name in itertools.cycle(inputs):
            if time.monotonic() >= stop:
                break
            path, body = inputs[name]
            started = time.perf_counter()
            answer = await client.post(path, content=body, headers=headers)
            times[name].append((time.perf_counter() - started) * 1000)
            seen[f"{name} -> {answer.status_code}"] += 1
    return times


async def _attackers(
    url: str,
    key: str,
    inputs: dict[str, tuple[str, bytes]],
    window: tuple[float, float],
    clients: int,
) -> tuple[list[dict[str, list[float]]], Counter[str]]:
    seen: Counter[str] = Counter()
    await asyncio.sleep(max(0.0, window[0] - time.time()))
    stop = time.monotonic() + window[1] - time.time()
    sent = await asyncio.gather(*(attack(url, key, inputs, stop, seen) for _ in range(clients)))
    return list(sent), seen


def attackers(
    url: str,
    key: str,
    inputs: dict[str, tuple[str, bytes]],
    window: tuple[float, float],
    clients: int,
) -> tuple[list[dict[str, list[float]]], Counter[str]]:
    """The clients, in a process of their own, sending between the two wall-clock times of
    ``window``: their HTTP work must not delay the probe's timings in this one (10 busy
    clients on the probe's loop add tens of ms to what it measures)."""
    return asyncio.run(_attackers(url, key, inputs, window, clients))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of its live children (the heavy-work workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


async def open_sessions(url: str, key: str, prefix: str, count: int) -> list[str]:
    """Live sessions to kill: each opened by a SessionStart hook, as Claude Code does."""
    headers = {"Authorization": f"Bearer {key}"}
    ids = [f"{prefix}-{n}" for n in range(count)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for session_id in ids:
            hook = {
                "session_id": session_id,
                "hook_event_name": "SessionStart",
                "source": "startup",
            }
            answer = await client.post("/hooks/claude-code", json=hook, headers=headers)
            answer.raise_for_status()
    return ids


async def probe(url: str, stop: float, sessions: list[str]) -> tuple[list[float], list[float]]:
    """``/healthz`` every 20 ms, and every fifth time a live session killed."""
    health: list[float] = []
    kills: list[float] = []
    admin = {"Authorization": f"Bearer {ADMIN}"}
    to_kill = iter(sessions)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for n in itertools.count():
            if time.monotonic() >= stop:
                break
            started = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            health.append((time.perf_counter() - started) * 1000)
            session = next(to_kill, None) if n % 5 == 0 else None
            if session is not None:
                started = time.perf_counter()
                killed = await client.post(
                    f"/admin/v1/sessions/{session}/kill", json={"reason": "bench"}, headers=admin
                )
                kills.append((time.perf_counter() - started) * 1000)
                assert killed.status_code == 200, killed.text
                assert killed.json()["state"] == "terminated", killed.text
            await asyncio.sleep(0.02)
    return health, kills


async def load(
    url: str,
    key: str,
    inputs: dict[str, tuple[str, bytes]],
    seconds: float,
    clients: int,
    pid: int,
) -> tuple[list[float], list[float], list[dict[str, list[float]]], Counter[str], float]:
    """``/healthz`` and kill timings while ``clients`` send ``inputs`` round-robin, and the
    server's CPU ms per request meanwhile."""
    sessions = await open_sessions(url, key, f"kill-{time.monotonic_ns()}", int(seconds * 15))
    cpu = cpu_seconds(pid)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        # The child started first: on a loaded machine its start-up took longer than the
        # fixed 4 s once, and it then sent nothing.
        await asyncio.get_running_loop().run_in_executor(pool, os.getpid)
        window = (time.time() + 1, time.time() + 1 + seconds)
        sending = asyncio.get_running_loop().run_in_executor(
            pool, attackers, url, key, inputs, window, clients
        )
        await asyncio.sleep(window[0] + 0.5 - time.time())
        health, kills = await probe(url, time.monotonic() + seconds - 1, sessions)
        sent, seen = await sending
    cpu = cpu_seconds(pid) - cpu
    requests = len(health) + len(kills) + sum(seen.values())
    if not seen:
        raise SystemExit("the clients sent nothing: the figures would measure no load")
    return health, kills, sent, seen, cpu * 1000 / max(1, requests)


def _answered(inputs: dict[str, tuple[str, bytes]], sent: list[dict[str, list[float]]]) -> None:
    for name in inputs:
        samples = [s for r in sent for s in r[name]]
        if samples:
            report(name, samples)


Figures = dict[str, list[float] | float]


async def run(url: str, key: str, seconds: float, clients: int, pid: int) -> Figures:
    idle_h, idle_k = await probe(
        url, time.monotonic() + 3, await open_sessions(url, key, "idle", 30)
    )
    trivial = trivial_input()
    base_h, base_k, base_sent, base_seen, base_cpu = await load(
        url, key, trivial, seconds, clients, pid
    )
    inputs = worst_inputs()
    health, kills, sent, seen, cpu = await load(url, key, inputs, seconds, clients, pid)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("idle (no other client):")
    report("/healthz", idle_h)
    report("POST /sessions/{id}/kill", idle_k)
    print(f"baseline: {clients} clients sending a trivial hook call (ls) for {seconds:.0f} s:")
    report("/healthz", base_h, idle_h)
    report("POST /sessions/{id}/kill", base_k, idle_k)
    _answered(trivial, base_sent)
    print(f"  server CPU per request: {base_cpu:.2f} ms")
    print(f"attack: the same {clients} clients sending the worst inputs for {seconds:.0f} s:")
    report("/healthz", health, base_h)
    report("POST /sessions/{id}/kill", kills, base_k)
    print("  (added: over the baseline, i.e. what the parsers cost the probes)")
    print(f"  server CPU per request: {cpu:.2f} ms")
    print("each worst input (answered in):")
    _answered(inputs, sent)
    print("answers:", ", ".join(f"{k}: {v}" for k, v in sorted((base_seen + seen).items())))
    return {
        "idle /healthz": idle_h, "idle kill": idle_k,
        "baseline /healthz": base_h, "baseline kill": base_k,
        "attack /healthz": health, "attack kill": kills,
        "baseline CPU ms/request": base_cpu, "attack CPU ms/request": cpu,
        "load": os.getloadavg()[0],
    }  # fmt: skip


def serve_and_run(src: str | None, seconds: float, clients: int) -> Figures:
    """A fresh ``tether up`` from ``src`` (None: this checkout), measured once."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env |= {"TETHER_DATA_DIR": str(Path(tmp) / "data"), "TETHER_ADMIN_TOKEN": ADMIN}
        env |= {"TETHER_URL": url}
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        server = subprocess.Popen(
            [sys.executable, "-m", "tether.cli", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{url}/healthz", timeout=120, process=server)
            time.sleep(2)  # the heavy-work worker's start-up, where there is one
            admin = {"Authorization": f"Bearer {ADMIN}"}
            httpx.post(
                f"{url}/admin/v1/projects", json={"name": "bench"}, headers=admin
            ).raise_for_status()
            agent = httpx.post(
                f"{url}/admin/v1/agents", json={"name": "worst", "project": "bench"}, headers=admin
            )
            agent.raise_for_status()
            return asyncio.run(run(url, agent.json()["key"], seconds, clients, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)


def compare(runs: list[tuple[str, Figures]]) -> None:
    """One line per server run: P50 / P99 of each probe, CPU per request, load."""
    print("\nsummary (ms, P50 / P99):")
    keys = [k for k, v in runs[0][1].items() if isinstance(v, list)]
    print("| run | " + " | ".join(keys) + " | CPU ms/req, baseline / attack | load |")
    print("|---" * (len(keys) + 3) + "|")
    for name, figures in runs:
        cells = []
        for key in keys:
            samples = figures[key]
            assert isinstance(samples, list)
            cells.append(f"{pct(samples, 50):.1f} / {pct(samples, 99):.1f}")
        cpu = f"{figures['baseline CPU ms/request']:.2f} / {figures['attack CPU ms/request']:.2f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {cpu} | {figures['load']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument(
        "--before", help="another checkout's src directory, measured first in the same run"
    )
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    runs: list[tuple[str, Figures]] = []
    for n in range(args.rounds):
        if args.before:
            print(f"=== round {n + 1}: before ({args.before})")
            runs.append((f"{n + 1} before", serve_and_run(args.before, args.seconds, args.clients)))
        print(f"=== round {n + 1}: this checkout")
        runs.append((f"{n + 1} after", serve_and_run(None, args.seconds, args.clients)))
    compare(runs)


if __name__ == "__main__":
    main()
