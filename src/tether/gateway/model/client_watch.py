"""Calls waiting on upstream, given up when their client leaves first: a client that timed
out must not hold a connection to upstream and a budget reservation for minutes.

One timer looks at every waiting call each ``CHECK_SECONDS``, rather than a timer a call:
creating and cancelling a timer for each upstream wait cost more than the dictionary entry
that replaces it (measured on the Messages door under load)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

__all__ = ["CHECK_SECONDS", "ClientGone", "ClientWatch"]

CHECK_SECONDS = 0.5
"""How often the waiting calls' clients are looked at: a call whose client left is given
up within this long."""
T = TypeVar("T")


class ClientGone(Exception):
    """The client closed its connection before tether could answer."""


class _Waiting:
    __slots__ = ("left", "request")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.left = False


class ClientWatch:
    """Every call awaiting ``while_client_waits`` in one table, swept by one timer that runs
    only while the table is not empty."""

    def __init__(self, check_seconds: float = CHECK_SECONDS) -> None:
        self._check_seconds = check_seconds
        self._waiting: dict[asyncio.Task[object], _Waiting] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def while_client_waits(self, request: web.Request, work: Awaitable[T]) -> T:
        """``work``, run in the caller's task; raises ``ClientGone`` (with ``work``
        cancelled) when the client left before it ended."""
        task = asyncio.current_task()
        if task is None or task in self._waiting:
            return await work
        waiting = self._waiting[task] = _Waiting(request)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._check_seconds, self._sweep)
        try:
            result = await work
        except (asyncio.CancelledError, Exception):  # the sweep's, or one work made of it
            if _cancelled_by_sweep(waiting, task):
                raise ClientGone from None
            raise
        finally:
            del self._waiting[task]
        if _cancelled_by_sweep(waiting, task):  # the work swallowed the cancellation
            raise ClientGone
        return result

    def _sweep(self) -> None:
        self._timer = None
        for task, waiting in self._waiting.items():
            if waiting.left:
                continue
            transport = waiting.request.transport
            if transport is None or transport.is_closing():
                waiting.left = True
                task.cancel()
        if self._waiting:
            self._timer = asyncio.get_running_loop().call_later(self._check_seconds, self._sweep)


def _cancelled_by_sweep(waiting: _Waiting, task: asyncio.Task[object]) -> bool:
    """Whether the sweep cancelled the task, and nothing else did (a shutdown): its
    cancellation is then taken back, and the client is gone. Asked once."""
    return waiting.left and task.uncancel() == 0
