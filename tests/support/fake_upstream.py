"""The fake Anthropic API on a free loopback port, in its own thread."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiohttp import web

from tether.fakes.anthropic import FakeAnthropic
from tether.fakes.serving import serve_on_loopback


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

    runner, url = asyncio.run_coroutine_threadsafe(serve_on_loopback(fake.app()), loop).result(10)
    return RunningFake(fake, url, loop, thread, runner)
