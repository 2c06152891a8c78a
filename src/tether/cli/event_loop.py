"""The server's event loop: uvloop where it is installed (measured: less CPU per proxied
request than asyncio's default loop), asyncio's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["new_event_loop", "run_event_loop"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop ``tether up`` runs on, for code that drives a server on a thread of its own
    (the test servers): behaviour that differs between loops shows there too."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main)
