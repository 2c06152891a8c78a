"""``tether up --workers N``: N server processes sharing one port (SO_REUSEPORT; the
kernel spreads connections over them), supervised by the process that started them.

Before forking, the supervisor settles what the workers must share: the master key (read
or created once, handed to every worker), the schema (migrated once) and the database
(PostgreSQL: SQLite is one process's database). The guards' per-session memory must be
shared too, so ``TETHER_REDIS_URL`` is required. Worker 0 creates and prints the first
admin token; the others only serve. A worker that dies is started again; SIGINT/SIGTERM
stop them all (each drains its calls in flight), and so does the supervisor's death.
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess

from tether.cli.event_loop import run_event_loop
from tether.config import Settings
from tether.errors import ConfigError
from tether.parent_watch import when_orphaned
from tether.vault.master_key import load_master_key

__all__ = ["run_workers"]

log = logging.getLogger("tether.up")

RESTART_DELAY_SECONDS = 1.0
STOP_GRACE_EXTRA_SECONDS = 10.0
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def fleet_settings(settings: Settings, workers: int) -> Settings:
    """The settings every worker runs with; refuses what several processes cannot share."""
    if not settings.database_url or settings.database_url.startswith("sqlite"):
        raise ConfigError(
            f"--workers {workers} needs PostgreSQL (TETHER_DATABASE_URL=postgresql://…): "
            "SQLite is one process's database"
        )
    if not settings.redis_url:
        raise ConfigError(
            f"--workers {workers} needs TETHER_REDIS_URL: the guards keep each session's "
            "calls there, so a loop trips at the same call whichever worker serves it"
        )
    if settings.port == 0:
        raise ConfigError("--workers needs a fixed port (the workers share it)")
    key = load_master_key(settings.master_key, settings.data_dir / "master.key")
    return replace(settings, master_key=base64.b64encode(key).decode(), reuse_port=True)


async def _migrate(settings: Settings) -> None:
    from tether.cli.local_store import local_database

    async with local_database(settings):
        pass


def _worker(settings: Settings, index: int, supervisor: int) -> None:
    """A forked worker leaves by ``os._exit`` (multiprocessing), which runs no ``atexit``:
    its log lines still buffered are written here, or the last ones of every request
    before the stop would be lost. A worker whose supervisor was killed stops as if told
    to (draining its calls), rather than serve on beside a restarted supervisor's. Until
    the server takes SIGTERM over, it is the default (the supervisor's own handler, copied
    by the fork, would swallow a stop sent while the worker starts)."""
    from tether.cli.up import serve

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    when_orphaned(supervisor, lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        run_event_loop(serve(settings, announce=index == 0))
    finally:
        logging.shutdown()


def run_workers(settings: Settings, workers: int) -> int:
    """Runs until SIGINT/SIGTERM; returns the exit code."""
    settings = fleet_settings(settings, workers)
    if settings.migrate:
        run_event_loop(_migrate(settings))
    settings = replace(settings, migrate=False)
    context = multiprocessing.get_context("fork")
    running: dict[int, BaseProcess] = {}
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def start(index: int) -> None:
        """Forked with the stop signals held back: a stop the supervisor is sent meanwhile
        is its own once the fork is done, and one sent to the new worker waits for the
        worker's own handling (the supervisor's handler, copied by the fork, would swallow
        it)."""
        process = context.Process(
            target=_worker, args=(settings, index, os.getpid()), name=f"tether-worker-{index}"
        )
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        running[index] = process

    for index in range(workers):
        start(index)
    log.info("tether: %d workers on port %d (pids %s)", workers, settings.port,
             ", ".join(str(p.pid) for p in running.values()))  # fmt: skip
    while not stopping:
        time.sleep(0.2)
        for index, process in list(running.items()):
            if not process.is_alive() and not stopping:
                log.warning("tether worker %d (pid %s) exited with %s; starting it again",
                            index, process.pid, process.exitcode)  # fmt: skip
                time.sleep(RESTART_DELAY_SECONDS)
                if not stopping:
                    start(index)
    for process in running.values():
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.shutdown_grace_seconds + STOP_GRACE_EXTRA_SECONDS
    for process in running.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
    return 0
