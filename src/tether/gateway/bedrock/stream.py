"""Bedrock's event stream as the Messages SSE the shared tap reads, and back.

Each ``chunk`` frame becomes ``event: <type>`` with its event JSON as the data line, byte
for byte, so encoding it again gives the agent the frame Bedrock sent. Exception frames
become SSE ``error`` events, and tether's error events (a kill, a budget mid-stream)
become exception frames the Bedrock SDKs raise with tether's reason.
"""

from __future__ import annotations

import orjson

from tether.gateway.bedrock.eventstream import (
    EventStreamError,
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


class BedrockStreamCodec:
    def __init__(self) -> None:
        self._reader = FrameReader()

    def decode(self, chunk: bytes) -> bytes:
        out = bytearray()
        try:
            frames = self._reader.feed(chunk)
        except EventStreamError as exc:
            return _sse_error("internalServerException", f"Amazon Bedrock's stream broke: {exc}")
        for frame in frames:
            if frame.message_type == "event":
                if frame.headers.get(":event-type") != "chunk":
                    continue
                try:
                    event = chunk_event(frame)
                    kind = orjson.loads(event).get("type")
                except (EventStreamError, orjson.JSONDecodeError, AttributeError) as exc:
                    out += _sse_error("internalServerException", f"a chunk is unreadable: {exc}")
                    continue
                if b"\n" in event:
                    event = orjson.dumps(orjson.loads(event))
                out += b"event: " + str(kind).encode() + b"\ndata: " + event + b"\n\n"
            else:
                kind = frame.headers.get(":exception-type") or frame.headers.get(
                    ":error-code", "internalServerException"
                )
                try:
                    message = str(orjson.loads(frame.payload).get("message", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    message = frame.payload[:500].decode(errors="replace")
                out += _sse_error(kind, message)
        return bytes(out)

    def encode(self, events: bytes) -> bytes:
        out = bytearray()
        for event in events.split(b"\n\n"):
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
                out += chunk_frame(data)
        return bytes(out)


def _sse_error(kind: str, message: str) -> bytes:
    data = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return b"event: error\ndata: " + data + b"\n\n"
