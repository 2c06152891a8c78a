"""The worst inputs for each parser on the request path, from 10 clients at once, while
``/healthz`` and a session kill (``POST /sessions/{id}/kill``, what ``tether sessions
kill`` calls) are timed. Every parser must stay linear and bounded, so neither should
wait on them: the target is P99 < 50 ms.

Starts ``tether up`` (SQLite, a fresh data dir) as a real process and drives it over HTTP.

    uv run python bench/worst_inputs.py [--seconds 20] [--clients 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
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


async def probe(url: str, stop: float) -> tuple[list[float], list[float]]:
    health: list[float] = []
    kills: list[float] = []
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for n in itertools.count():
            if time.monotonic() >= stop:
                break
            started = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            health.append((time.perf_counter() - started) * 1000)
            if n % 5 == 0:
                started = time.perf_counter()
                killed = await client.post(
                    f"/admin/v1/sessions/bench-{n}/kill", json={"reason": "bench"}, headers=admin
                )
                kills.append((time.perf_counter() - started) * 1000)
                assert killed.status_code < 500, killed.text
            await asyncio.sleep(0.02)
    return health, kills


async def run(url: str, key: str, seconds: float, clients: int) -> None:
    inputs = worst_inputs()
    seen: Counter[str] = Counter()
    baseline_h, baseline_k = await probe(url, time.monotonic() + 3)
    stop = time.monotonic() + seconds
    results = await asyncio.gather(
        probe(url, stop), *(attack(url, key, inputs, stop, seen) for _ in range(clients))
    )
    health, kills = results[0]  # type: ignore[misc]
    print(
        f"idle:  /healthz P99 {pct(baseline_h, 99):.1f} ms, kill P99 {pct(baseline_k, 99):.1f} ms"
    )
    print(f"under {clients} clients sending the worst inputs for {seconds:.0f} s:")
    report("/healthz", health, baseline_h)
    report("POST /sessions/{id}/kill", kills, baseline_k)
    print("each worst input (answered in):")
    for name in inputs:
        samples = [s for r in results[1:] for s in r[name]]  # type: ignore[index]
        if samples:
            report(name, samples)
    print("answers:", ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env |= {"TETHER_DATA_DIR": str(Path(tmp) / "data"), "TETHER_ADMIN_TOKEN": ADMIN}
        env |= {"TETHER_URL": url}
        server = subprocess.Popen(
            [sys.executable, "-m", "tether.cli", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{url}/healthz", process=server)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            httpx.post(
                f"{url}/admin/v1/projects", json={"name": "bench"}, headers=admin
            ).raise_for_status()
            agent = httpx.post(
                f"{url}/admin/v1/agents", json={"name": "worst", "project": "bench"}, headers=admin
            )
            agent.raise_for_status()
            asyncio.run(run(url, agent.json()["key"], args.seconds, args.clients))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
