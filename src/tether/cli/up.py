"""``tether up``: run the control plane in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable

from rich.console import Console

from tether import __version__
from tether.cli.token_file import save_token
from tether.config import Settings
from tether.readiness.schedule import DrillSchedule
from tether.runtime import Runtime
from tether.server import build_app, make_runner, make_site, stop_heavy_work, warm_up
from tether.shutdown import stop_in_order
from tether.sqlite_lock import hold_sqlite_database

__all__ = ["serve"]

console = Console(stderr=True, highlight=False)
log = logging.getLogger("tether.up")


def calm_garbage_collector() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less
    often: measured on the gateway, full collections were a source of multi-ms P99 stalls."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    sys.setswitchinterval(0.001)


def cli_command() -> str:
    """How to run ``tether`` from another shell: ``uv run tether`` when started by
    ``uv run`` (the entry point is on no one else's PATH), else ``tether``."""
    return "uv run tether" if os.environ.get("UV") else "tether"


def _banner_printer(log_format: str) -> Callable[[str], None]:
    """On the console, never wrapped mid-command; with JSON logs, as log records, so
    stderr stays one JSON object per line."""
    if log_format == "json":

        def as_records(text: str) -> None:
            for line in text.splitlines():
                log.info("%s", line)

        return as_records
    return functools.partial(console.print, soft_wrap=True, markup=False)


def _announce(settings: Settings, runtime: Runtime, secret: str | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    backend = "PostgreSQL" if runtime.db.is_postgres else "SQLite"
    say = _banner_printer(settings.log_format)
    say(f"tether {__version__} listening on {url} ({backend})")
    token_file = settings.data_dir / "admin.token"
    if secret:
        save_token(token_file, secret)
        say(f"admin token (shown once; saved to {token_file}, mode 0600):")
        print(secret, flush=True)
    elif token_file.exists():
        say(f"admin token: in {token_file}")
    tether = cli_command()
    say(
        f"next: {tether} projects create demo && "
        f"{tether} agents create agent-01 --project demo\n"
        "point an agent at it:\n"
        f"  export ANTHROPIC_BASE_URL={url}\n"
        "  export ANTHROPIC_API_KEY=<the agent's tth_ key>"
    )


def _door_url(settings: Settings) -> str:
    """Where scheduled drills knock: this process, on the loopback when it listens on all."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


async def serve(settings: Settings, announce: bool = True) -> None:
    """``announce``: create and print the first admin token and the banner (one worker of
    several does)."""
    with hold_sqlite_database(settings.resolved_database_url):
        await _serve(settings, announce)


async def _serve(settings: Settings, announce: bool) -> None:
    runtime = await Runtime.start(settings)
    app = build_app(runtime)
    runner = make_runner(app, settings, logging.getLogger("tether.access"))
    await runner.setup()
    warm_up(app)
    drills: DrillSchedule | None = None
    stopped = False
    try:
        site = make_site(runner, settings, settings.host, settings.port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if announce:
            _announce(settings, runtime, await runtime.create_bootstrap_token())
        if settings.drill_every is not None:
            drills = DrillSchedule(runtime, settings.drill_every, _door_url(settings))
            drills.start()
        calm_garbage_collector()
        await stop.wait()
        console.print("tether: shutting down")
        if drills is not None:
            await drills.stop()  # its drills knock on this server's doors: first
            drills = None
        await stop_in_order(runner, runtime, settings.shutdown_grace_seconds)
        stopped = True
    finally:
        if drills is not None:
            await drills.stop()
        if not stopped:
            await runner.cleanup()
            with contextlib.suppress(Exception):
                await runtime.stop()
        stop_heavy_work(app)
