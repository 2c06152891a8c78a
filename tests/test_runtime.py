"""A single process (no ``TETHER_REDIS_URL``) starts and serves without the Redis client
library in memory: it is imported only for a fleet that shares state in Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.databases import REDIS_URL

SCRIPT = """
import asyncio, sys
from tether.config import Settings
from tether.runtime import Runtime
from tether.server import build_app

async def main(env):
    runtime = await Runtime.start(Settings.from_env(env))
    try:
        build_app(runtime)
    finally:
        await runtime.stop()

env = {"TETHER_DATA_DIR": sys.argv[1], "TETHER_ADMIN_TOKEN": "t" * 32}
if len(sys.argv) > 2:
    env["TETHER_REDIS_URL"] = sys.argv[2]
asyncio.run(main(env))
print("REDIS", sorted(m for m in sys.modules if m == "redis" or m.startswith("redis.")) != [])
"""


def _redis_imported(data: Path, *redis_url: str) -> bool:
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), *redis_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    return "REDIS True" in ran.stdout


def test_a_single_process_runs_without_the_redis_client(tmp_path: Path) -> None:
    assert not _redis_imported(tmp_path / "alone")


def test_a_fleet_with_redis_loads_it(tmp_path: Path) -> None:
    assert _redis_imported(tmp_path / "fleet", REDIS_URL)
