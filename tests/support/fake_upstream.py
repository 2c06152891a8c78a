"""The fake Anthropic API on a free loopback port, in its own thread."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiohttp import web

from tether.fakes.anthropic import FakeAnthropic


@dataclass
class RunningFake:
    fake: FakeAnthropic
    url: str
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _runner: web.AppRunner

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def start_fake(fake: FakeAnthropic | None = None) -> RunningFake:
    fake = fake or FakeAnthropic()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="fake-anthropic")
    thread.start()

    async def boot() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(fake.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    runner, port = asyncio.run_coroutine_threadsafe(boot(), loop).result(10)
    return RunningFake(fake, f"http://127.0.0.1:{port}", loop, thread, runner)
