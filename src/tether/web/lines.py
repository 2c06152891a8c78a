"""Lines of a byte stream read in chunks, however long: aiohttp's ``readline`` refuses a
line over twice its read buffer, and one upstream answer can be one line (a batch's
result, an MCP tool's answer in a server-sent event)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

__all__ = ["LineSplitter", "LineTooLong", "lines_of"]


class LineTooLong(Exception):
    """A line passed the length the reader allows."""


class LineSplitter:
    """Cuts chunks into lines (without their ``\\n``); a partial line waits for the rest.
    Each byte is looked at once, however many chunks a long line comes in."""

    def __init__(self, limit: int | None = None) -> None:
        self._pending = bytearray()
        self._scanned = 0
        self._limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        lines = []
        start = 0
        while (end := self._pending.find(b"\n", max(start, self._scanned))) >= 0:
            lines.append(bytes(self._pending[start:end]))
            start = end + 1
        del self._pending[:start]
        self._scanned = len(self._pending)
        if self._limit is not None and self._scanned > self._limit:
            raise LineTooLong(f"a line is over {self._limit} bytes")
        return lines

    def end(self) -> bytes | None:
        """The stream is over: a last line without its newline, if any."""
        if not self._pending:
            return None
        last = bytes(self._pending)
        self._pending.clear()
        self._scanned = 0
        return last


async def lines_of(content: aiohttp.StreamReader, limit: int | None = None) -> AsyncIterator[bytes]:
    """Each line of ``content`` as it arrives; ``LineTooLong`` past ``limit`` bytes."""
    splitter = LineSplitter(limit)
    async for chunk in content.iter_any():
        for line in splitter.feed(chunk):
            yield line
    last = splitter.end()
    if last is not None:
        yield last
