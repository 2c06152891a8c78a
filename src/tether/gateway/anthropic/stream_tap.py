"""Reads a Messages SSE stream as it passes through, and holds back what must be judged.

Collects what accounting and the audit trail need — usage from ``message_start`` and
``message_delta`` (and ``message_stop``, where Bedrock's Converse reports it), an estimate
of the output so far, ``tool_use`` blocks with their streamed JSON input. Each ``tool_use``
block is held until its input is complete and handed out as a ``HeldToolUse`` for the
pipeline to judge before the agent sees it; everything else passes at once, in whole
events. Text deltas, the bulk of a stream, are counted without JSON parsing.

A door whose stream is not SSE (Bedrock's event frames) hands its events over already
read (``feed_events``), each with its bytes as they go on the wire: no SSE is written for
the tap to parse again, and what passes is the door's own framing, untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tether.pipeline.outcome import ToolUse
from tether.pricing.usage import Usage

__all__ = ["HeldToolUse", "ReadEvent", "Segment", "StreamTap"]

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
DELTA_ENVELOPE_BYTES = 70
"""``{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}``:
what a delta's data line carries besides the generated text."""
BYTES_PER_OUTPUT_TOKEN = 3
"""Output is counted as it streams at 3 bytes a token (English runs near 4, code near 3,
JSON escapes add bytes): the estimate errs high until ``message_delta`` gives the truth."""


@dataclass(frozen=True, slots=True)
class HeldToolUse:
    """A complete tool_use block, not yet delivered: ``raw`` is its events as received."""

    tool_use: ToolUse
    raw: bytes


Segment = bytes | HeldToolUse
ReadEvent = tuple[bytes, bytes, bytes]
"""An event a door read out of its own framing: its name, its data (the event JSON, as an
SSE data line would carry it) and its bytes as they are passed on."""


PINGS = (b"event: ping\n", b"event:ping\n")


class StreamTap:
    def __init__(self, release_pings: bool = False) -> None:
        """``release_pings``: upstream's pings during a held tool call pass at once, ahead of
        it (they carry nothing), so a long tool call does not leave the client in silence."""
        self._release_pings = release_pings
        self.usage = Usage()
        self.model: str | None = None
        self.tool_uses: list[ToolUse] = []
        self.started = False
        self.completed = False
        self.error: str | None = None
        self._delta_bytes = 0
        self._buffer = bytearray()
        self._scanned = 0
        """How much of ``_buffer`` is known to hold no event end: an event that arrives in
        many small chunks is scanned once, not once per chunk (that was quadratic)."""
        self._open_tool: tuple[int, str, str, list[str]] | None = None
        self._held = bytearray()

    @property
    def output_tokens(self) -> int:
        """Output tokens generated so far: upstream's count when it gave one, else the
        estimate from the deltas seen, whichever is higher."""
        estimate = -(-self._delta_bytes // BYTES_PER_OUTPUT_TOKEN)
        return max(self.usage.output_tokens, estimate)

    def unreadable(self, size: int) -> None:
        """``size`` bytes of upstream's stream that could not be read (a corrupt frame and
        what came with it): they may carry generated text, so they count as output at the
        deltas' rate, byte for byte (a frame's bytes are more than its event's, so this
        errs high)."""
        self._delta_bytes += size

    def feed(self, chunk: bytes) -> list[Segment]:
        """What may be passed on now, in order: bytes, and tool calls to judge first."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        self._buffer += chunk
        out: list[Segment] = []
        passing = bytearray()
        start = 0
        while (end := self._buffer.find(b"\n\n", max(start, self._scanned - 1))) >= 0:
            event = bytes(self._buffer[start : end + 2])
            start = end + 2
            finished = self._event(event)
            self._route(event, finished, event.startswith(PINGS), out, passing)
        if start:
            del self._buffer[:start]
        self._scanned = len(self._buffer)
        if passing:
            out.append(bytes(passing))
        return out

    def feed_events(self, events: Iterable[ReadEvent]) -> list[Segment]:
        """``feed`` for events already read out of a door's framing (see ``ReadEvent``):
        the same reading and holding, and what passes is each event's wire bytes."""
        out: list[Segment] = []
        passing = bytearray()
        for name, data, wire in events:
            finished = self._seen(name, data, len(data))
            self._route(wire, finished, name == b"ping", out, passing)
        if passing:
            out.append(bytes(passing))
        return out

    def _route(
        self,
        wire: bytes,
        finished: ToolUse | None,
        ping: bool,
        out: list[Segment],
        passing: bytearray,
    ) -> None:
        """An event's bytes join what passes now, or the held tool call (pings pass while a
        tool call is held, when released); a finished tool call goes out to be judged."""
        if self._open_tool is not None and self._release_pings and ping:
            passing += wire
        elif self._open_tool is not None or finished is not None:
            if passing:
                out.append(bytes(passing))
                passing.clear()
            self._held += wire
            if finished is not None:
                out.append(HeldToolUse(finished, bytes(self._held)))
                self._held.clear()
        else:
            passing += wire

    def rest(self) -> bytes:
        """Whatever the stream ended with that was not a whole event."""
        rest = bytes(self._held) + bytes(self._buffer)
        self._held.clear()
        self._buffer.clear()
        self._scanned = 0
        return rest

    def _event(self, block: bytes) -> ToolUse | None:
        name = b""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        return self._seen(name, b"\n".join(data), sum(map(len, data)))

    def _seen(self, name: bytes, data: bytes, size: int) -> ToolUse | None:
        """One event read: ``size`` is its data's length without line breaks."""
        if name == b"content_block_delta":
            self._delta_bytes += max(1, size - DELTA_ENVELOPE_BYTES)
            if self._open_tool is None:
                return None
        elif name not in INTERESTING:
            return None
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return self._handle(name, payload) if isinstance(payload, dict) else None

    def _handle(self, name: bytes, payload: dict[str, Any]) -> ToolUse | None:
        if name == b"message_start":
            message = _object(payload.get("message"))
            self.started = True
            self.model = message.get("model") or self.model
            self.usage.update(message.get("usage"))
        elif name == b"message_delta":
            self.usage.update(payload.get("usage"))
        elif name == b"message_stop":
            self.completed = True
            self.usage.update(payload.get("usage"))
        elif name == b"content_block_start":
            block = _object(payload.get("content_block"))
            if block.get("type") == "tool_use":
                index = payload.get("index", -1)
                self._open_tool = (index, str(block.get("id", "")), str(block.get("name", "")), [])
        elif name == b"content_block_delta":
            tool = self._open_tool
            delta = _object(payload.get("delta"))
            if tool is not None and delta.get("type") == "input_json_delta":
                tool[3].append(str(delta.get("partial_json", "")))
        elif name == b"content_block_stop":
            tool = self._open_tool
            if tool is not None and tool[0] == payload.get("index", -1):
                self._open_tool = None
                use = ToolUse(tool[1], tool[2], _json_or_text("".join(tool[3])))
                self.tool_uses.append(use)
                return use
        elif name == b"error":
            error = _object(payload.get("error"))
            self.error = f"{error.get('type', 'error')}: {error.get('message', '')}"
        return None


def _object(value: Any) -> dict[str, Any]:
    """A field that should be an object, or an empty one: an upstream (a custom
    ``upstream_base_url``) that sends anything else there is read as if it sent nothing,
    not allowed to break the relay before its usage is counted."""
    return value if isinstance(value, dict) else {}


def _json_or_text(text: str) -> Any:
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
