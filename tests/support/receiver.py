"""A real local webhook receiver that records deliveries and can fail the first ones."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    fail_first: int = 0
    fail_status: int = 503
    """What the first ``fail_first`` requests are answered."""
    hold_seconds: float = 0.0
    """How long to keep each request waiting before answering (a slow receiver)."""
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.hold_seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hold_seconds)
        if self.fail_first and self.attempts <= self.fail_first:
            return web.Response(status=self.fail_status, text="receiver refused")
        self.deliveries.append(Delivery(request.path, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    def start(self) -> Receiver:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def boot() -> int:
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        port = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        assert self._loop is not None and self._runner is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._closing.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
