"""What a single process carries: the Redis client library only for a fleet that shares
state in Redis, the MCP SDK only once ``/mcp`` has been called, and Alembic only when the
database needs a migration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.databases import REDIS_URL

SCRIPT = """
import asyncio, json, sys
import aiohttp
from aiohttp import web
from tether.config import Settings
from tether.runtime import Runtime
from tether.server import build_app

def loaded(package):
    return any(m == package or m.startswith(package + ".") for m in sys.modules)

async def main(env, call_mcp):
    runtime = await Runtime.start(Settings.from_env(env))
    runner = web.AppRunner(build_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    migrated = loaded("alembic")
    before = {"redis": loaded("redis"), "mcp": loaded("mcp")}
    status = None
    if call_mcp:
        async with aiohttp.ClientSession() as client:
            async with client.post(
                f"http://127.0.0.1:{port}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}},
                headers={"Accept": "application/json, text/event-stream"},
            ) as answer:
                status = answer.status
    after = {"redis": loaded("redis"), "mcp": loaded("mcp")}
    await runner.cleanup()
    await runtime.stop()
    print(json.dumps({"before": before, "after": after, "status": status, "alembic": migrated}))

env = {"TETHER_DATA_DIR": sys.argv[1], "TETHER_ADMIN_TOKEN": "t" * 32}
if sys.argv[3]:
    env["TETHER_REDIS_URL"] = sys.argv[3]
asyncio.run(main(env, sys.argv[2] == "call-mcp"))
"""


def _loaded(data: Path, call_mcp: bool = False, redis_url: str = "") -> dict[str, object]:
    """Which of the optional libraries the process holds before and after it served."""
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), "call-mcp" if call_mcp else "", redis_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    loaded: dict[str, object] = json.loads(ran.stdout.strip().splitlines()[-1])
    return loaded


def test_a_single_process_runs_without_the_redis_client(tmp_path: Path) -> None:
    assert _loaded(tmp_path / "alone")["after"] == {"redis": False, "mcp": False}


def test_a_fleet_with_redis_loads_it(tmp_path: Path) -> None:
    assert _loaded(tmp_path / "fleet", redis_url=REDIS_URL)["before"] == {
        "redis": True,
        "mcp": False,
    }


def test_the_mcp_sdk_is_loaded_by_the_first_call_to_mcp(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path / "mcp", call_mcp=True)
    assert loaded["before"] == {"redis": False, "mcp": False}
    assert loaded["status"] == 200
    assert loaded["after"] == {"redis": False, "mcp": True}


def test_a_restart_on_a_database_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    assert _loaded(tmp_path / "data")["alembic"] is True
    assert _loaded(tmp_path / "data")["alembic"] is False
