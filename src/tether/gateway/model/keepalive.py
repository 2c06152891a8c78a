"""Pings on a relayed stream that has been quiet for a while.

Claude Code drops a stream silent for 300 s (and some proxies far sooner). Upstream's own
pings are relayed, but a stream can be quiet at tether's end too: a long tool call is held
until it is complete and judged, and a slow upstream may say nothing for minutes. This
writes a ``ping`` event whenever nothing has been written for ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

__all__ = ["SSE_PING", "KeepAlive"]

SSE_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


class KeepAlive:
    """Runs beside the relay loop, which calls ``wrote`` after each write of its own: both
    write whole events, so a ping never lands inside one."""

    def __init__(self, response: web.StreamResponse, ping: bytes, interval: float) -> None:
        self._response = response
        self._ping = ping
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stream-keepalive")

    def wrote(self) -> None:
        self._last = self._loop.time()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            wait = self._last + self._interval - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await self._response.write(self._ping)
            except (ConnectionError, RuntimeError):
                return
            self._last = self._loop.time()
