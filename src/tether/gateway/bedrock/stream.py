"""Bedrock's event stream read into the shared tap as Messages events, and back.

Each ``chunk`` frame is read once into its event (name and JSON, byte for byte) and
handed to the tap with the frame itself: what the tap lets through goes to the agent as
the very frames Bedrock sent (no SSE written and parsed again, no second base64 and CRC
pass on the hot path). Exception frames become ``error`` events, and tether's error
events (a kill, a budget mid-stream) become exception frames the Bedrock SDKs raise with
tether's reason. A corrupt frame ends the reading (``broken``): the relay closes upstream
and ends the agent's stream as on any upstream failure.
"""

from __future__ import annotations

import binascii

import orjson

from tether.gateway.anthropic.stream_tap import ReadEvent, Segment, StreamTap
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
        try:  # strict: a quote (another field after ``bytes``) is not base64 either
            return binascii.a2b_base64(payload[len(_BYTES_PREFIX) : -2], strict_mode=True)
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
    """Frames are relayed as they came: no pings of tether's own, none moved ahead of a
    held tool call."""

    def __init__(self) -> None:
        self._reader = FrameReader()
        self.broken: str | None = None
        """Set once a corrupt frame arrives (see ``StreamCodec.broken``)."""

    def read(self, tap: StreamTap, chunk: bytes) -> list[Segment]:
        reader = self._reader
        frames = reader.feed(chunk)
        if reader.broken is not None and self.broken is None:
            self.broken = f"a corrupt event-stream frame ({reader.broken})"
            # what could not be read may carry generated text: counted as output
            tap.unreadable(reader.unread)
        events: list[ReadEvent] = []
        for frame in frames:
            if frame.message_type == "event":
                try:
                    event = self.event_of(frame)
                except (EventStreamError, orjson.JSONDecodeError, AttributeError) as exc:
                    unreadable = f"a chunk is unreadable: {exc}"
                    events.append(_error("internalServerException", unreadable))
                    continue
                if event is not None:
                    events.append(event)
            else:
                exception = frame.headers.get(":exception-type") or frame.headers.get(
                    ":error-code", "internalServerException"
                )
                try:
                    message = str(orjson.loads(frame.payload).get("message", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    message = frame.payload[:500].decode(errors="replace")
                events.append(_error(exception, message))
        return tap.feed_events(events)

    def event_of(self, frame: Frame) -> ReadEvent | None:
        """The event an event frame carries, with the frame (None: it is not passed on)."""
        if frame.headers.get(":event-type") != "chunk":
            return None
        event = _event_of(frame.payload) or chunk_event(frame)
        kind = _type_of(event)
        if b"\n" in event:  # read as an SSE data line would have been: on one line
            event = orjson.dumps(orjson.loads(event))
        return kind, event, frame.raw

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
                out += self.event_frame(name, data)
        return bytes(out)

    def event_frame(self, name: bytes, data: bytes) -> bytes:
        """An SSE event tether wrote itself (not one read from upstream) as a frame."""
        return chunk_frame(data)


def _error(kind: str, message: str) -> ReadEvent:
    """An ``error`` event for the tap, and the exception frame the agent gets for it."""
    data = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return b"error", data, exception_frame(exception_type_for(kind), message)
