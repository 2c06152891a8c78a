"""Lines of a byte stream read in chunks, however long: aiohttp's ``readline`` refuses a
line over twice its read buffer, and one upstream answer can be one line (a batch's
result, an MCP tool's answer in a server-sent event)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

__all__ = ["LineSplitter", "lines_of"]


class LineSplitter:
    """Cuts chunks into lines (without their ``\\n``); a partial line waits for the rest."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        lines = []
        start = 0
        while (end := self._pending.find(b"\n", start)) >= 0:
            lines.append(bytes(self._pending[start:end]))
            start = end + 1
        del self._pending[:start]
        return lines

    def end(self) -> bytes | None:
        """The stream is over: a last line without its newline, if any."""
        if not self._pending:
            return None
        last = bytes(self._pending)
        self._pending.clear()
        return last


async def lines_of(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Each line of ``content`` as it arrives."""
    splitter = LineSplitter()
    async for chunk in content.iter_any():
        for line in splitter.feed(chunk):
            yield line
    last = splitter.end()
    if last is not None:
        yield last
