"""Server-sent events as MCP Streamable HTTP sends them: one JSON-RPC message per event's
``data``. Relayed event by event, so progress notifications and server requests reach the
agent as they come; only the response to the agent's own request may be rewritten."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from tether.web.lines import lines_of

__all__ = ["EventTooLarge", "Rewrite", "events", "render"]

Rewrite = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class EventTooLarge(Exception):
    """One event (or one line of it) passed the size it may have."""


async def events(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[list[str]]:
    """The lines of each event (without the blank line that ends it), lines ended by LF,
    CRLF or a lone CR as the SSE spec has them (a client splits on each: so must tether,
    or an answer reaches the agent unread). Raises ``EventTooLarge`` past ``limit`` bytes."""
    lines: list[str] = []
    size = 0
    async for raw in lines_of(content, limit):
        for line in raw.decode("utf-8", "replace").removesuffix("\r").split("\r"):
            if line:
                size += len(line)
                if size > limit:
                    raise EventTooLarge(f"a server-sent event is over {limit} bytes")
                lines.append(line)
            elif lines:
                yield lines
                lines, size = [], 0
    if lines:
        yield lines


def data_of(lines: list[str]) -> Any:
    data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def render(lines: list[str], message: dict[str, Any] | None = None) -> bytes:
    """The event again; with ``message``, its data replaced by it."""
    if message is None:
        return ("\n".join(lines) + "\n\n").encode()
    kept = [line for line in lines if not line.startswith("data:")]
    kept.append("data: " + json.dumps(message, separators=(",", ":")))
    return ("\n".join(kept) + "\n\n").encode()
