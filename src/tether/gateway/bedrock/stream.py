"""Bedrock's event stream as the Messages SSE the shared tap reads, and back.

Each ``chunk`` frame becomes ``event: <type>`` with its event JSON as the data line, byte
for byte. Events the tap lets through unchanged go to the agent as the very frames Bedrock
sent (kept in order as they were read: no second base64 and CRC pass on the hot path).
Exception frames become SSE ``error`` events, and tether's error events (a kill, a budget
mid-stream) become exception frames the Bedrock SDKs raise with tether's reason.
"""

from __future__ import annotations

import binascii
from collections import deque

import orjson

from tether.gateway.bedrock.eventstream import (
    EventStreamError,
    Frame,
    FrameReader,
    chunk_event,
    chunk_frame,
    exception_frame,
)

__all__ = ["BedrockStreamCodec", "exception_type_for"]

_MODELLED = frozenset(
    {
        "internalServerException",
        "modelStreamErrorException",
        "validationException",
        "throttlingException",
        "modelTimeoutException",
        "serviceUnavailableException",
    }
)
_EXCEPTIONS = {
    "rate_limit_error": "throttlingException",
    "overloaded_error": "serviceUnavailableException",
    "api_error": "internalServerException",
    "timeout_error": "modelTimeoutException",
    "invalid_request_error": "validationException",
}


def exception_type_for(error_type: str) -> str:
    """The exception frame type for a Messages error type. Only the types Bedrock's API
    model names reach the SDKs with their message (botocore drops an unmodelled type's
    message), so tether's refusals (a kill, a budget, a policy) are
    ``modelStreamErrorException`` carrying tether's reason."""
    if error_type in _MODELLED:
        return error_type
    return _EXCEPTIONS.get(error_type, "modelStreamErrorException")


_TYPE_PREFIX = b'{"type":"'
_BYTES_PREFIX = b'{"bytes":"'


def _event_of(payload: bytes) -> bytes:
    """The event JSON in a chunk's ``{"bytes": base64}`` (the common shape read without
    a JSON parser)."""
    if payload.startswith(_BYTES_PREFIX) and payload.endswith(b'"}'):
        inner = payload[len(_BYTES_PREFIX) : -2]
        if b'"' not in inner:
            try:
                return binascii.a2b_base64(inner, strict_mode=True)
            except binascii.Error:
                pass
    return b""


def _type_of(event: bytes) -> bytes:
    if event.startswith(_TYPE_PREFIX):
        end = event.find(b'"', len(_TYPE_PREFIX))
        if end > 0:
            return event[len(_TYPE_PREFIX) : end]
    kind = orjson.loads(event).get("type")
    return str(kind).encode()


class BedrockStreamCodec:
    keepalive = b""
    """Frames are relayed as they came (their order matters to ``encode``): no pings of
    tether's own, none moved ahead of a held tool call."""

    def __init__(self) -> None:
        self._reader = FrameReader()
        self._sent: deque[tuple[bytes, bytes]] = deque()
        """(SSE event, the frame it came from), for events not yet passed on."""

    def decode(self, chunk: bytes) -> bytes:
        try:
            frames = self._reader.feed(chunk)
        except EventStreamError as exc:
            return _sse_error("internalServerException", f"Amazon Bedrock's stream broke: {exc}")
        out: list[bytes] = []
        remember = self._sent.append
        event_sse = self.event_sse
        for frame in frames:
            headers = frame.headers
            if headers.get(":message-type") == "event":
                try:
                    sse = event_sse(frame)
                except (EventStreamError, orjson.JSONDecodeError, AttributeError) as exc:
                    out.append(
                        _sse_error("internalServerException", f"a chunk is unreadable: {exc}")
                    )
                    continue
                if sse:
                    remember((sse, frame.raw))
                    out.append(sse)
            else:
                exception = headers.get(":exception-type") or headers.get(
                    ":error-code", "internalServerException"
                )
                try:
                    message = str(orjson.loads(frame.payload).get("message", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    message = frame.payload[:500].decode(errors="replace")
                out.append(_sse_error(exception, message))
        return out[0] if len(out) == 1 else b"".join(out)

    def event_sse(self, frame: Frame) -> bytes:
        """One SSE event for an event frame (empty: the frame is not passed on)."""
        if frame.headers.get(":event-type") != "chunk":
            return b""
        event = _event_of(frame.payload) or chunk_event(frame)
        if event.startswith(_TYPE_PREFIX) and (end := event.find(b'"', 9)) > 0:
            kind = event[9:end]
        else:
            kind = _type_of(event)
        if b"\n" in event:
            event = orjson.dumps(orjson.loads(event))
        return b"".join((b"event: ", kind, b"\ndata: ", event, b"\n\n"))

    def encode(self, events: bytes) -> bytes:
        sent = self._sent
        if sent and sent[0][0] == events:  # one event: its frame as it came
            return sent.popleft()[1]
        out = bytearray()
        at = 0
        while sent:
            sse, frame = sent[0]
            if not events.startswith(sse, at):
                break
            out += frame
            at += len(sse)
            sent.popleft()
        if at == len(events):
            return bytes(out)
        for event in events[at:].split(b"\n\n"):
            name, data = b"", b""
            for line in event.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip()
                elif line.startswith(b"data:"):
                    data = line[5:].strip()
            if not data:
                continue
            if name == b"error":
                try:
                    error = orjson.loads(data).get("error") or {}
                except (orjson.JSONDecodeError, AttributeError):
                    error = {}
                out += exception_frame(
                    exception_type_for(str(error.get("type", "api_error"))),
                    str(error.get("message", "")),
                )
            else:
                out += self.event_frame(name, data)
        return bytes(out)

    def event_frame(self, name: bytes, data: bytes) -> bytes:
        """An SSE event tether wrote itself (not one read from upstream) as a frame."""
        return chunk_frame(data)


def _sse_error(kind: str, message: str) -> bytes:
    data = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return b"event: error\ndata: " + data + b"\n\n"
