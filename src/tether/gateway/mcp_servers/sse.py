"""Server-sent events as MCP Streamable HTTP sends them: one JSON-RPC message per event's
``data``. Relayed event by event, so progress notifications and server requests reach the
agent as they come; only the response to the agent's own request may be rewritten."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from tether.web.lines import lines_of

__all__ = ["Rewrite", "events", "render"]

Rewrite = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def events(content: aiohttp.StreamReader) -> AsyncIterator[list[str]]:
    """The lines of each event (without the blank line that ends it)."""
    lines: list[str] = []
    async for raw in lines_of(content):
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if line:
            lines.append(line)
        elif lines:
            yield lines
            lines = []
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
