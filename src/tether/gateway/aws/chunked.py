"""``aws-chunked`` uploads with signed chunks (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``).

Each chunk's signature chains from the previous one, starting at the request's (seed)
signature. The agent's chain is verified with the agent's secret as the chunks pass, and
each chunk is re-signed in a new chain from the upstream request's seed signature with
the real secret; sizes do not change, so neither does ``Content-Length``. Unsigned
streaming (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``) passes through unchanged: its
checksum trailer is checked by S3 itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator

from aiohttp import StreamReader
from aiohttp.http_exceptions import LineTooLong
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

__all__ = [
    "SIGNED_CHUNKS",
    "SIGNED_CHUNKS_TRAILER",
    "UNSIGNED_TRAILER",
    "ChunkChain",
    "ChunkError",
    "resign_chunks",
]

SIGNED_CHUNKS = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_CHUNKS_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_CHUNK_BYTES = 64 * 1024 * 1024
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEADER = re.compile(rb"^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-f]{64})\r\n$")


class ChunkError(Exception):
    """A chunk that is malformed or whose signature does not chain."""


class ChunkChain:
    """Chunk signatures of one request, each chained from the one before (botocore's
    signing-key derivation and HMAC)."""

    def __init__(self, auth: SigV4Auth, timestamp: str, seed_signature: str) -> None:
        self._auth = auth
        self._request = AWSRequest(method="PUT", url="http://chunk/")
        self._request.context["timestamp"] = timestamp
        self._scope = auth.credential_scope(self._request)
        self._previous = seed_signature

    def next(self, data: bytes) -> str:
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self._request.context["timestamp"],
                self._scope,
                self._previous,
                _EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        self._previous = self._auth.signature(string_to_sign, self._request)
        return self._previous


async def resign_chunks(
    reader: StreamReader, agent: ChunkChain, upstream: ChunkChain
) -> AsyncIterator[bytes]:
    """The body re-chunked for upstream; raises ``ChunkError`` at the first chunk that
    does not verify (the upstream request is then aborted)."""
    while True:
        try:
            line = await reader.readline()
        except (LineTooLong, ValueError):  # a line longer than aiohttp buffers (no CRLF)
            raise ChunkError("a chunk header is too long") from None
        match = _HEADER.match(line)
        if match is None:
            raise ChunkError("a chunk header is malformed")
        size = int(match[1], 16)
        if size > MAX_CHUNK_BYTES:
            raise ChunkError(f"a chunk of {size} bytes is larger than allowed")
        try:
            data = await reader.readexactly(size) if size else b""
            ending = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            raise ChunkError("the body ends inside a chunk") from None
        if ending != b"\r\n":
            raise ChunkError("a chunk does not end with CRLF")
        if not hmac.compare_digest(agent.next(data), match[2].decode()):
            raise ChunkError("a chunk signature does not match")
        yield f"{size:x};chunk-signature={upstream.next(data)}\r\n".encode() + data + b"\r\n"
        if size == 0:
            return
