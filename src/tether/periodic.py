"""Bookkeeping batched in memory and written every second or so: the loop that writes it,
and once more at shutdown. A store that cannot take it now is logged, not fatal; the
batch's owner keeps what was not written for the next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tether.errors import TetherError

__all__ = ["PeriodicFlush"]

log = logging.getLogger(__name__)


STOP_WAIT_SECONDS = 5.0
"""How long ``stop`` lets a flush under way finish before cancelling it."""


class PeriodicFlush:
    """A flush under way when the owner stops is let finish, not cancelled: one cancelled
    after its write committed, before it noted what was written, would write it again
    in the last flush (a lease's spending charged twice)."""

    def __init__(self, what: str, flush: Callable[[], Awaitable[None]], seconds: float) -> None:
        self._what = what
        self._flush = flush
        self._seconds = seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._forever(), name=self._what)

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            done, _ = await asyncio.wait({self._task}, timeout=STOP_WAIT_SECONDS)
            if not done:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(TetherError):
            await self._flush()

    async def _forever(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires (as in the change feed).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._seconds):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self._flush()
            except TetherError as exc:
                log.warning("%s not saved yet: %s", self._what, exc.message)
