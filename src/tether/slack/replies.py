"""Posts to an interaction's ``response_url`` after the request is acknowledged (Slack
waits 3 s for the acknowledgement): the message replaced with the decision, or an
ephemeral reply to whoever clicked. The URL is never logged, only its host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = ["SlackReplies"]

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)
STOP_GRACE_SECONDS = 5.0


class SlackReplies:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)

    def send(self, response_url: str, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._post(response_url, message), name="slack-reply")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, response_url: str, message: dict[str, Any]) -> None:
        assert self._session is not None
        host = urlsplit(response_url).hostname
        try:
            async with self._session.post(response_url, json=message) as response:
                if response.status >= 300:
                    log.warning("Slack refused a reply (HTTP %s from %s)", response.status, host)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("a reply to Slack (%s) failed: %s", host, type(exc).__name__)

    async def stop(self) -> None:
        """Let replies under way finish briefly, then cut the rest."""
        if self._pending:
            _, late = await asyncio.wait(set(self._pending), timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()
