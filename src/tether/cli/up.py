"""``tether up``: run the control plane in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from pathlib import Path

from rich.console import Console

from tether import __version__
from tether.config import Settings
from tether.runtime import Runtime
from tether.server import build_app, make_runner, make_site

__all__ = ["serve"]

console = Console(stderr=True, highlight=False)


def _save_token(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")


def calm_garbage_collector() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less
    often: measured on the gateway, full collections were a source of multi-ms P99 stalls."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    sys.setswitchinterval(0.001)


def _announce(settings: Settings, runtime: Runtime) -> None:
    url = f"http://{settings.host}:{settings.port}"
    backend = "PostgreSQL" if runtime.db.is_postgres else "SQLite"
    console.print(f"tether {__version__} listening on {url} ({backend})")
    token_file = settings.data_dir / "admin.token"
    if runtime.bootstrap_secret:
        _save_token(token_file, runtime.bootstrap_secret)
        console.print(f"admin token (shown once; saved to {token_file}, mode 0600):")
        print(runtime.bootstrap_secret, flush=True)
    elif token_file.exists():
        console.print(f"admin token: in {token_file}")
    console.print(
        "next: tether projects create demo && tether agents create agent-01 --project demo\n"
        "point an agent at it:\n"
        f"  export ANTHROPIC_BASE_URL={url}\n"
        "  export ANTHROPIC_API_KEY=<the agent's tth_ key>"
    )


async def serve(settings: Settings) -> None:
    runtime = await Runtime.start(settings)
    runner = make_runner(build_app(runtime), settings)
    await runner.setup()
    try:
        site = make_site(runner, settings, settings.host, settings.port)
        await site.start()
        _announce(settings, runtime)
        calm_garbage_collector()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        console.print("tether: shutting down")
    finally:
        await runner.cleanup()
        with contextlib.suppress(Exception):
            await runtime.stop()
