"""The ``application/vnd.amazon.eventstream`` framing, both ways, CRCs checked.

A frame is a 12-byte prelude (total length, headers length, CRC-32 of the two), headers
(name, type 7 = string, value), a payload and a CRC-32 of all before it. Bedrock sends each
Messages event as a ``chunk`` event whose payload is ``{"bytes": base64(event JSON)}``, and
failures as ``exception`` frames. Reading is linear and bounded: a frame longer than
``MAX_FRAME_BYTES`` is refused, never buffered, and a corrupt frame ends the reading for
good (``FrameReader.broken``): nothing in this framing says where the next frame starts.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from functools import lru_cache
from typing import NamedTuple

import orjson

__all__ = [
    "EventStreamError",
    "Frame",
    "FrameReader",
    "chunk_event",
    "chunk_frame",
    "encode_frame",
    "exception_frame",
]

MAX_FRAME_BYTES = 16 * 1024 * 1024
_PRELUDE = struct.Struct(">III")
_CRC = struct.Struct(">I")
_STRING = 7


class EventStreamError(ValueError):
    """The bytes are not an event stream (a bad CRC, a frame past the limit)."""


class Frame(NamedTuple):
    """One frame (a tuple: a stream makes one per event, so it is built cheaply)."""

    headers: dict[str, str]
    payload: bytes
    raw: bytes = b""
    """The whole frame as read (relayed as it is when nothing in it changes)."""

    @property
    def message_type(self) -> str:
        return self.headers.get(":message-type", "")


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + bytes([_STRING])
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + bytes(encoded) + payload
    return frame + struct.pack(">I", zlib.crc32(frame))


def chunk_frame(event_json: bytes) -> bytes:
    """One Messages event as Bedrock streams it."""
    payload = b'{"bytes":"' + base64.b64encode(event_json) + b'"}'
    return encode_frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        payload,
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """A mid-stream failure as Bedrock reports it (the SDKs raise it with ``message``)."""
    return encode_frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": message}),
    )


class FrameReader:
    """Whole frames out of a byte stream cut anywhere. A chunk of whole frames (the usual
    case) is read in place; only a frame cut across chunks is buffered, and only looked at
    again once enough bytes for it have arrived.

    A corrupt frame (a CRC that does not match, a length no frame has, headers cut short)
    is found once: ``feed`` returns the frames before it and sets ``broken``, the bytes
    from it on are dropped (counted in ``unread``), and every later ``feed`` reads nothing.
    Kept, the bytes were parsed again, and the same error raised, on every later chunk:
    work quadratic in the rest of the stream, and a buffer growing without bound."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need = 0
        """How many buffered bytes the next frame (or prelude) needs before it can be read."""
        self.broken: EventStreamError | None = None
        """Why the stream stopped being readable; None while it reads."""
        self.unread = 0
        """Bytes received but not read as frames once ``broken``: the corrupt frame, what
        came with it and anything fed after it."""

    def feed(self, data: bytes) -> list[Frame]:
        if self.broken is not None:
            self.unread += len(data)
            return []
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:
                return []
            buffer = bytes(self._buffer)
            self._buffer.clear()
        else:
            buffer = data if type(data) is bytes else bytes(data)
        frames: list[Frame] = []
        start, size, need = 0, len(buffer), 12
        unpack, crc_of, crc32 = _PRELUDE.unpack_from, _CRC.unpack_from, zlib.crc32
        try:
            while size - start >= 12:
                total, headers_length, prelude_crc = unpack(buffer, start)
                if crc32(buffer[start : start + 8]) != prelude_crc:
                    raise EventStreamError("an event-stream frame's prelude CRC does not match")
                if total > MAX_FRAME_BYTES or total < 16 or headers_length > total - 16:
                    raise EventStreamError(f"an event-stream frame claims {total} bytes")
                end = start + total
                if end > size:
                    need = total
                    break
                body_at = start + 12 + headers_length
                # the whole frame's CRC goes on from the prelude's (checked just above)
                if crc32(buffer[start + 8 : end - 4], prelude_crc) != crc_of(buffer, end - 4)[0]:
                    raise EventStreamError("an event-stream frame's CRC does not match")
                frames.append(
                    Frame(
                        _headers(buffer[start + 12 : body_at]),
                        buffer[body_at : end - 4],
                        buffer[start:end] if start or end != size else buffer,
                    )
                )
                start = end
        except EventStreamError as exc:
            self.broken, self.unread, self._need = exc, size - start, 0
            return frames
        if start < size:  # a frame cut across chunks: kept until the rest of it arrives
            self._buffer += buffer[start:] if start else buffer
            self._need = need
        return frames

    @property
    def pending(self) -> int:
        return len(self._buffer)


@lru_cache(maxsize=64)
def _headers(raw: bytes) -> dict[str, str]:
    """A frame's headers (read-only: a stream repeats the same few, read once each)."""
    try:
        return _read_headers(raw)
    except (IndexError, struct.error):
        raise EventStreamError("an event-stream frame's headers are cut short") from None


def _read_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    at = 0
    while at < len(raw):
        size = raw[at]
        name = raw[at + 1 : at + 1 + size].decode(errors="replace")
        at += 1 + size
        kind = raw[at]
        at += 1
        if kind != _STRING:
            raise EventStreamError(f"event-stream header {name!r} is not a string (type {kind})")
        (length,) = struct.unpack_from(">H", raw, at)
        headers[name] = raw[at + 2 : at + 2 + length].decode(errors="replace")
        at += 2 + length
    return headers


def chunk_event(frame: Frame) -> bytes:
    """The event JSON a ``chunk`` frame carries."""
    try:
        payload = orjson.loads(frame.payload)
        return base64.b64decode(payload["bytes"], validate=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
        raise EventStreamError(
            f"a chunk frame's payload is not {{'bytes': base64}}: {exc}"
        ) from None
