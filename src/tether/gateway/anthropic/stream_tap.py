"""Reads a Messages SSE stream as it passes through, without holding it up.

Collects what accounting and the audit trail need — usage from ``message_start`` and
``message_delta``, and ``tool_use`` blocks with their streamed JSON input. Text deltas,
the bulk of a stream, are skipped without JSON parsing.
"""

from __future__ import annotations

from typing import Any

import orjson

from tether.pipeline.outcome import ToolUse
from tether.pricing.usage import Usage

__all__ = ["StreamTap"]

INTERESTING = frozenset(
    {
        b"message_start",
        b"message_delta",
        b"message_stop",
        b"content_block_start",
        b"content_block_stop",
        b"error",
    }
)


class StreamTap:
    def __init__(self) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self.tool_uses: list[ToolUse] = []
        self.completed = False
        self.error: str | None = None
        self._buffer = bytearray()
        self._open_tools: dict[int, tuple[str, str, list[str]]] = {}

    def feed(self, chunk: bytes) -> None:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        self._buffer += chunk
        start = 0
        while (end := self._buffer.find(b"\n\n", start)) >= 0:
            self._event(bytes(self._buffer[start:end]))
            start = end + 2
        if start:
            del self._buffer[:start]

    def _event(self, block: bytes) -> None:
        name = b""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if name == b"content_block_delta":
            if not self._open_tools:
                return
        elif name not in INTERESTING:
            return
        try:
            payload = orjson.loads(b"\n".join(data))
        except orjson.JSONDecodeError:
            return
        if isinstance(payload, dict):
            self._handle(name, payload)

    def _handle(self, name: bytes, payload: dict[str, Any]) -> None:
        if name == b"message_start":
            message = payload.get("message") or {}
            self.model = message.get("model") or self.model
            self.usage.update(message.get("usage"))
        elif name == b"message_delta":
            self.usage.update(payload.get("usage"))
        elif name == b"message_stop":
            self.completed = True
        elif name == b"content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._open_tools[payload.get("index", -1)] = (
                    str(block.get("id", "")),
                    str(block.get("name", "")),
                    [],
                )
        elif name == b"content_block_delta":
            tool = self._open_tools.get(payload.get("index", -1))
            delta = payload.get("delta") or {}
            if tool is not None and delta.get("type") == "input_json_delta":
                tool[2].append(str(delta.get("partial_json", "")))
        elif name == b"content_block_stop":
            tool = self._open_tools.pop(payload.get("index", -1), None)
            if tool is not None:
                self.tool_uses.append(ToolUse(tool[0], tool[1], _json_or_text("".join(tool[2]))))
        elif name == b"error":
            error = payload.get("error") or {}
            self.error = f"{error.get('type', 'error')}: {error.get('message', '')}"


def _json_or_text(text: str) -> Any:
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
