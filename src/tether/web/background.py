"""A loop that runs for as long as the server serves (an aiohttp cleanup context): started
with the app, cancelled and awaited when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

__all__ = ["while_serving"]


async def while_serving(
    name: str, forever: Callable[[], Coroutine[Any, Any, None]]
) -> AsyncIterator[None]:
    """Use as ``app.cleanup_ctx.append(lambda _app: while_serving("what", loop))``."""
    task = asyncio.create_task(forever(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
