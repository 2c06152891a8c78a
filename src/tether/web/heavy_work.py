"""CPU-bound work of large requests (reading a long command line, redacting a big tool
input) off the event loop, at most ``width`` pieces at once, on threads of its own.

That work is linear and bounded, but 16 KB of shell still costs ~15 ms of pure Python.
On the shared default executor, ten such requests ran on five threads at once, each
taking the GIL from the event loop in turn (``/healthz`` P99 100 ms). Here a request past
the bound waits its turn parked, which costs the loop nothing, and no more than ``width``
threads compete with the loop for the GIL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["HEAVY_BODY_BYTES", "HeavyWork"]

T = TypeVar("T")

HEAVY_BODY_BYTES = 1_024
"""A request body longer than this has its reading done here, not on the event loop."""


class HeavyWork:
    """A lane ``width`` wide: callers past it wait in arrival order."""

    def __init__(self, width: int = 1) -> None:
        if width < 1:
            raise ValueError("width must be at least 1")
        self.width = width
        self._slots = asyncio.Semaphore(width)
        self._executor = ThreadPoolExecutor(width, thread_name_prefix="heavy-work")
        self.running = 0
        self.most_running = 0
        """The most pieces seen running at once (never above ``width``)."""
        self.waited = 0
        """How many pieces found the lane full and waited their turn."""

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on one of the lane's threads once a place is free."""
        if self._slots.locked():
            self.waited += 1
        async with self._slots:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, work)
            finally:
                self.running -= 1

    def close(self) -> None:
        """Work not started is dropped; a piece under way finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)
