"""What makes two calls "the same call" for the repeat guard."""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Any

import orjson

__all__ = [
    "action_fingerprint",
    "answer_key",
    "body_fingerprint",
    "request_fingerprint",
    "result_fingerprint",
    "text_fingerprint",
    "tool_use_fingerprint",
    "tool_use_key",
]

BITS = 60
"""Fingerprints are ints below 2**60: a Python int that size takes 32 bytes (a 24-hex-digit
string took 73), and a collision among one session's few hundred calls is negligible."""
MASK = (1 << BITS) - 1


def _digest(material: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest()) & MASK


def body_fingerprint(body: bytes) -> int:
    """Byte-identical request bodies: a retry, or an agent re-sending the same turn. Every
    proxied request pays for this, and Claude Code bodies run to megabytes: CRC-32 plus the
    length costs 0.07 ms for 500 kB here, blake2b 0.35 ms. A false trip needs more than
    ``repeat_limit`` different bodies of one session to share both within the window."""
    return (len(body) << 32 | zlib.crc32(body)) & MASK


_FIELD_NAMES = (b'"stream"', b'"max_tokens"')
_FIELD_VALUE = re.compile(rb"\s*:\s*(?:true|false|\d+)\s*")
_SPACE = b" \t\r\n"


def _field_spans(body: bytes) -> list[tuple[int, int]]:
    """Where ``"stream": …`` and ``"max_tokens": …`` stand, found with ``bytes.find`` (a
    regex tried at every position cost 18 ms on a 420 kB body; this costs a scan)."""
    spans = []
    for name in _FIELD_NAMES:
        at = body.find(name)
        while at >= 0:
            value = _FIELD_VALUE.match(body, at + len(name))
            if value is not None:
                spans.append((at, value.end()))
            at = body.find(name, at + 1)
    return sorted(spans)


def _kept_pieces(body: bytes) -> list[bytes | memoryview]:
    """``body`` without those fields and the comma that joined them (a comma on both sides
    leaves one), as pieces of it, so a body with them and one without read the same."""
    spans = _field_spans(body)
    if not spans:
        return [body]
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    cursor = 0
    for start, end in spans:
        if start < cursor:
            continue
        left = start
        while left > cursor and body[left - 1] in _SPACE:
            left -= 1
        comma_before = left > cursor and body[left - 1 : left] == b","
        if comma_before:
            left -= 1
        right = end
        comma_after = body[right : right + 1] == b","
        if comma_after:
            right += 1
            while right < len(body) and body[right] in _SPACE:
                right += 1
        pieces += [view[cursor:left], b"," if comma_before and comma_after else b""]
        cursor = right
    pieces.append(view[cursor:])
    return pieces


def request_fingerprint(body: bytes) -> int:
    """``body_fingerprint`` blind to ``stream`` and ``max_tokens``: after a stream error
    Claude Code repeats a request without streaming and with a lower ``max_tokens``
    (measured: 128000, then 64000), and that repeat is the same question (a withheld answer
    stays withheld). The CRC runs over the kept pieces in place: no copy of the body."""
    crc, length = 0, 0
    for piece in _kept_pieces(body):
        crc = zlib.crc32(piece, crc)
        length += len(piece)
    return (length << 32 | crc) & MASK


def action_fingerprint(action: str, resource: str) -> int:
    """The same action on the same resource (hooks, ``/v1/authorize``)."""
    return _digest(f"call\0{action}\0{resource}".encode())


def text_fingerprint(text: str) -> int:
    """A front door's own description of what makes two calls the same (the AWS door's
    operation, resource and query)."""
    return _digest(f"text\0{text}".encode())


def _canonical(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return repr(value).encode()


def tool_use_fingerprint(name: str, tool_input: Any) -> int:
    """The model asking for the same tool with the same input (key order ignored)."""
    return _digest(name.encode() + b"\0" + _canonical(tool_input))


def result_fingerprint(content: Any) -> int:
    """What a tool answered (a ``tool_result``'s content, a PostToolUse ``tool_response``):
    the same call giving the same answer again is a loop; a changing answer is progress."""
    return _digest(_canonical(content))


def tool_use_key(tool_use_id: str) -> int:
    """A ``tool_use`` id as a session's guard memory keeps it."""
    return _digest(tool_use_id.encode())


def answer_key(tool_call: int, answer: int) -> int:
    """One (tool call, answer) pair, for counting how often a call gave the same answer."""
    return (tool_call ^ (answer * 0x9E3779B97F4A7C15 >> 4)) & MASK
