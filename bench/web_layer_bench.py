"""What aiohttp's web layer costs tether a request, with and without the exact-path
shortcut (``tether.web.exact_routes``): the same application (tether's own, every route
and its one middleware) behind aiohttp's own ``AppRunner`` and behind tether's runner,
each in its own process, answering ``GET /healthz`` (a handler that does nothing) over
keep-alive connections. Rounds alternate which server goes first; CPU is the server
process's, from /proc.

    uv run python bench/web_layer_bench.py [--rounds 8] [--seconds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from comparison.http1 import Pool
from harness import cpu_seconds, free_port, inprocess_runtime, wait_http

from tether.server import build_app, make_runner, make_site

RUNNERS = ("aiohttp", "tether")


async def serve(runner_kind: str, port: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        runtime = await inprocess_runtime(Path(workdir))
        app = build_app(runtime)
        runner = (
            make_runner(app, runtime.settings)
            if runner_kind == "tether"
            else web.AppRunner(app, access_log=None, handle_signals=False)
        )
        await runner.setup()
        await make_site(runner, runtime.settings, "127.0.0.1", port).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            await runtime.stop()


async def closed_loop(port: int, connections: int, seconds: float) -> int:
    """Requests answered 200 by ``connections`` clients sending one after another."""
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    pool = Pool("127.0.0.1", port)
    done = 0
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        conn = await pool.acquire()
        while time.perf_counter() < stop_at:
            if await conn.send(request) != 200:
                raise RuntimeError("GET /healthz did not answer 200")
            done += 1

    try:
        await asyncio.gather(*[client() for _ in range(connections)])
    finally:
        pool.close()
    return done


def measure(pid: int, port: int, connections: int, seconds: float) -> float:
    """Server CPU microseconds a request over one closed-loop phase."""
    before = cpu_seconds(pid)
    answered = asyncio.run(closed_loop(port, connections, seconds))
    return (cpu_seconds(pid) - before) / answered * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", choices=RUNNERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port))
        return

    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for kind in RUNNERS:
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind, "--port", str(port)]
            )
            servers[kind] = (process, port)
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, process)
        for process, port in servers.values():
            measure(process.pid, port, args.connections, 1.0)  # warm-up, not counted
        figures: dict[str, list[float]] = {kind: [] for kind in RUNNERS}
        for round_no in range(args.rounds):
            order = RUNNERS if round_no % 2 == 0 else RUNNERS[::-1]
            for kind in order:
                process, port = servers[kind]
                figures[kind].append(measure(process.pid, port, args.connections, args.seconds))
            print(
                f"round {round_no + 1}: "
                + "  ".join(f"{kind} {figures[kind][-1]:6.1f} µs" for kind in RUNNERS),
                flush=True,
            )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(15)
    base, shortcut = (statistics.median(figures[kind]) for kind in RUNNERS)
    saved = [a - b for a, b in zip(figures["aiohttp"], figures["tether"], strict=True)]
    print(
        f"\nGET /healthz, server CPU a request (median of {args.rounds} rounds):\n"
        f"  aiohttp's AppRunner (router, Application._handle)  {base:6.1f} µs\n"
        f"  tether's runner (exact-path shortcut)               {shortcut:6.1f} µs\n"
        f"  saved a request: median {statistics.median(saved):.1f} µs "
        f"(rounds: {min(saved):.1f} to {max(saved):.1f}); lower in "
        f"{sum(s > 0 for s in saved)} of {len(saved)} rounds"
    )


if __name__ == "__main__":
    main()
