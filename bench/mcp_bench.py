"""MCP gateway benchmark: what tether adds to a ``tools/call``, in one run.

A real MCP server (the ``mcp`` package, uvicorn, in a subprocess, bearer token required)
plays the upstream; a real ``tether up`` (SQLite, durable audit) relays. The same ``mcp``
client calls the same tool straight at the server with its token (baseline) and through
``/mcp/servers/NAME`` with the agent's tether key: authenticated, decided by the pipeline
(kill, pins, guards, Cedar with the arguments in context), audited, relayed, its answer
counted by the guards. Sequential calls, alternating direct and through tether so both
meet the same noise of a shared machine; prints P50/P99, the added latency and tether's
CPU time per call (with the load average), for JSON and for SSE answers.

    uv run python bench/mcp_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
from harness import cpu_seconds, free_port, report, wait_http
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

ADMIN_TOKEN = "tta_bench_mcp_admin_token_0123456789abcdef"
UPSTREAM_TOKEN = "bench-upstream-token-0123456789"
Samples = tuple[list[float], list[float]]


def serve(port: int, json_response: bool) -> None:
    """The upstream MCP server (run as ``--serve PORT``)."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    server = MCPServer("bench", log_level="WARNING")

    @server.tool()
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    app = server.streamable_http_app(
        json_response=json_response,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        expected = f"Bearer {UPSTREAM_TOKEN}".encode()
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=port, log_level="warning")


@asynccontextmanager
async def mcp_client(url: str, bearer: str) -> AsyncIterator[ClientSession]:
    """An initialised ``mcp`` client session, its tools listed and a few calls made."""
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.list_tools()
        for warm in range(5):
            await session.call_tool("lookup", {"key": f"warm{warm}"})
        yield session


async def measure(direct: tuple[str, str], through: tuple[str, str], n: int) -> Samples:
    """``n`` calls each way, alternating (direct, then through tether), so both meet the
    same moment of a busy machine; milliseconds per call for each way."""
    async with mcp_client(*direct) as straight, mcp_client(*through) as relayed:
        samples: Samples = ([], [])
        for i in range(n):
            for session, into in ((straight, samples[0]), (relayed, samples[1])):
                started = time.perf_counter()
                result = await session.call_tool("lookup", {"key": f"k{i}"})
                into.append((time.perf_counter() - started) * 1000)
                assert not result.is_error, result
        return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.json)
        return
    n = 50 if args.quick else 300
    workdir = Path(tempfile.mkdtemp(prefix="tether-mcp-bench-"))
    tether_port = free_port()
    env = {**os.environ, "TETHER_DATA_DIR": str(workdir), "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
           "TETHER_PORT": str(tether_port), "TETHER_LOG_LEVEL": "WARNING"}  # fmt: skip
    tether = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    servers: list[subprocess.Popen[bytes]] = []
    try:
        wait_http(f"http://127.0.0.1:{tether_port}/healthz", timeout=120, process=tether)
        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{tether_port}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        admin.post("/projects", json={"name": "bench", "default_budgets": False}).raise_for_status()
        policy = (
            'permit(principal, action == Action::"mcp:lookup", resource)\n'
            '  when { context.arguments.key like "k*" || context.arguments.key like "warm*" };'
        )
        admin.put("/projects/bench/policy", json={"source": policy}).raise_for_status()
        admin.patch("/projects/bench/guards", json={"repeat_limit": None}).raise_for_status()
        key = admin.post("/agents", json={"name": "bench-agent", "project": "bench"}).json()["key"]
        print(f"MCP gateway: {n} sequential tools/call each, direct vs through tether "
              f"(SQLite, durable audit; {os.cpu_count()} cores)")  # fmt: skip
        for kind in ("json", "sse"):
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port)]
                + (["--json"] if kind == "json" else []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers.append(server)
            upstream = f"http://127.0.0.1:{port}/mcp"
            wait_http(f"http://127.0.0.1:{port}/", timeout=120, process=server)
            admin.post(
                "/projects/bench/mcp-servers",
                json={"name": kind, "url": upstream, "credential": UPSTREAM_TOKEN},
            ).raise_for_status()
            cpu0 = cpu_seconds(tether.pid)
            baseline, through = asyncio.run(
                measure(
                    (upstream, UPSTREAM_TOKEN),
                    (f"http://127.0.0.1:{tether_port}/mcp/servers/{kind}", key),
                    n,
                )
            )
            cpu = cpu_seconds(tether.pid) - cpu0
            report(f"tools/call ({kind}) direct", baseline)
            report(f"tools/call ({kind}) via tether", through, baseline)
            print(f"  {'':<44} tether CPU {cpu / (n + 7) * 1000:.2f} ms per call")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        tether.terminate()
        for server in servers:
            server.terminate()
        tether.wait(10)
        for server in servers:
            server.wait(10)


if __name__ == "__main__":
    main()
