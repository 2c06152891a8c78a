"""CPU-bound work of large requests (parsing a big hook body, reading a long command line,
redacting a big tool input) in worker processes, at most ``width`` pieces at once; the
pieces waiting are bounded by the work they bring (about ``wait_budget_seconds`` of it,
estimated from their sizes) and by their number (``queue``): past that a request is refused
(``heavy_work_busy``, fail closed). A fleet's ordinary 2-8 KB hook bodies cost about half a
millisecond each, so hundreds may wait a few milliseconds; a 1 MB body counts as 100 ms.

Processes, not threads: the work is linear and bounded, but 16 KB of shell or 1 MB of
small JSON objects still costs 15 to 150 ms of pure Python, and a thread doing it takes
the GIL from the event loop every 5 ms switch interval, so every loop turn of every other
request (a kill takes six) waited up to 5 ms more: kill P99 78-90 ms under attack. A worker
process competes with the loop for a core at most, never for its interpreter. Workers are
started with ``spawn`` (no copy of the server's threads and locks) and import what they
need once (``preload``); ``warm`` starts them before the first request needs them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tether.errors import TetherError
from tether.parent_watch import when_orphaned

__all__ = ["HEAVY_BODY_BYTES", "HeavyWork", "HeavyWorkBusy", "estimated_seconds"]

T = TypeVar("T")
log = logging.getLogger(__name__)

HEAVY_BODY_BYTES = 1_024
"""A request body longer than this is read in the heavy-work lane, not on the event loop."""

DEFAULT_QUEUE = 1_024
"""Pieces that may wait for a worker, whatever their size (a bound on memory)."""

DEFAULT_WAIT_BUDGET_SECONDS = 1.5
"""The estimated work that may wait for a worker: about how long the last one waits."""

PIECE_SECONDS = 0.000_5
"""A piece's fixed cost: handing it to the worker and its answer back (measured ~0.5 ms)."""

BYTES_PER_SECOND = 10_000_000
"""A piece's cost per byte of body: 1 MB of small JSON objects takes 20-150 ms to parse
and hand over; counted at the slow end, 100 ms."""


def estimated_seconds(size: int) -> float:
    """What a piece with a ``size``-byte body is counted as in the wait budget."""
    return PIECE_SECONDS + size / BYTES_PER_SECOND


class HeavyWorkBusy(TetherError):
    """The lane is full (or its worker died under this piece): refused, never read on the
    event loop instead (fail closed)."""

    code = "heavy_work_busy"


def _start_worker(server: int, modules: tuple[str, ...]) -> None:
    """Each worker imports what its pieces need once, at start, not in the first piece,
    and leaves at once when its server (process ``server``) is killed, keeping neither
    its memory nor the server's stdout and stderr."""
    when_orphaned(server, lambda: os._exit(0))
    for name in modules:
        importlib.import_module(name)


def _ready() -> bool:
    return True


class HeavyWork:
    """A lane ``width`` workers wide; callers past it wait in arrival order, up to
    ``queue`` of them and ``wait_budget_seconds`` of their estimated work. ``work`` and its
    arguments must be picklable (a module-level function), and so must its result: send
    bytes in, small answers out."""

    def __init__(
        self,
        width: int = 1,
        queue: int = DEFAULT_QUEUE,
        preload: tuple[str, ...] = (),
        wait_budget_seconds: float = DEFAULT_WAIT_BUDGET_SECONDS,
    ) -> None:
        if width < 1:
            raise ValueError("width must be at least 1")
        if queue < 0:
            raise ValueError("queue must be at least 0")
        if wait_budget_seconds < 0:
            raise ValueError("wait_budget_seconds must be at least 0")
        self.width = width
        self.queue = queue
        self.wait_budget_seconds = wait_budget_seconds
        self.waiting_seconds = 0.0
        """The estimated work of the pieces waiting now."""
        self._preload = preload
        self._slots = asyncio.Semaphore(width)
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self.running = 0
        self.waiting = 0
        self.most_running = 0
        """The most pieces seen running at once (never above ``width``)."""
        self.waited = 0
        """How many pieces found the lane full and waited their turn."""
        self.refused = 0
        """How many pieces found the lane and its queue full and were refused."""

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise HeavyWorkBusy("tether is shutting down; try again on another replica")
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.width,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(), self._preload),
            )
        return self._executor

    def warm(self) -> asyncio.Future[bool]:
        """Start the workers now (each imports ``preload``), so that the first heavy
        request does not wait for a Python interpreter to start. A failure here is only
        logged: the first heavy request meets it again and is refused."""
        started = asyncio.get_running_loop().run_in_executor(self._pool(), _ready)

        def logged(done: asyncio.Future[bool]) -> None:
            if not done.cancelled() and done.exception() is not None and not self._closed:
                log.warning("the heavy-work lane did not start: %s", done.exception())

        started.add_done_callback(logged)
        return started

    async def run(self, work: Callable[..., T], *args: object, size: int = 0) -> T:
        """``work(*args)`` in a worker once one is free; ``size`` is the body's length, what
        the piece is counted as while it waits. Refused when ``queue`` pieces already wait
        or its work would take the waiting work past ``wait_budget_seconds``."""
        cost = estimated_seconds(size)
        if self._slots.locked():
            if self.waiting >= self.queue or self.waiting_seconds + cost > self.wait_budget_seconds:
                self.refused += 1
                raise HeavyWorkBusy(
                    f"tether is reading {self.width + self.waiting} large requests already "
                    f"(about {self.waiting_seconds:.1f} s of work waiting); try again shortly"
                )
            self.waited += 1
        self.waiting += 1
        self.waiting_seconds += cost
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
            self.waiting_seconds = self.waiting_seconds - cost if self.waiting else 0.0
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            pool = self._pool()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, work, *args)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): this piece is refused, the next
                # one gets a fresh pool.
                if self._executor is pool:
                    self._executor = None
                    pool.shutdown(wait=False, cancel_futures=True)
                raise HeavyWorkBusy(
                    "tether's worker for large requests stopped; try again"
                ) from None
        finally:
            self.running -= 1
            self._slots.release()

    def also_preload(self, modules: tuple[str, ...]) -> None:
        """More for workers to import at start (those started already import it on
        their first piece that needs it)."""
        self._preload = tuple(dict.fromkeys((*self._preload, *modules)))

    def close(self) -> None:
        """Work not started is dropped and the workers are stopped (the lane closes with
        its app, once the requests that used it have drained). Stopped, not only told:
        a worker still starting when the executor shuts down never reads its stop
        (seen on Python 3.11), and the server's exit would wait for it for ever."""
        self._closed = True
        if self._executor is not None:
            workers = list((getattr(self._executor, "_processes", None) or {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            for worker in workers:
                worker.terminate()
