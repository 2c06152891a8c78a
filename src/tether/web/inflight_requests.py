"""Every request being handled, including those whose client already left (aiohttp forgets
their connection, not their handler): a stop waits for them, then cuts them, so each call
is settled and recorded before the pipeline and the audit log stop."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["InflightRequests"]


class InflightRequests:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self) -> asyncio.Task[object] | None:
        """Counts the running request's task in; hand what it returns to ``leave``."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._idle.clear()
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        if task is None:
            return
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def wait(self, seconds: float) -> bool:
        """True once no request is being handled; False if some still are after ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, seconds))
        return not self._tasks

    def cancel_all(self) -> int:
        """Cancel every handler still running (each settles what it did on its way out)."""
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)
