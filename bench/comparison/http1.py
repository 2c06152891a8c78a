"""A lean keep-alive HTTP/1.1 client for the load generator.

aiohttp's client costs about as much CPU per request as the servers it measures, so on
two cores it would cap the direct and pass-through figures. This client writes a request
built once as bytes and reads only the status line, ``Content-Length`` or chunked framing:
a few microseconds a request, the same for every server measured.
"""

from __future__ import annotations

import asyncio
from typing import cast


class ResponseError(Exception):
    """The connection closed before a whole response arrived."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._buf = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._head_end = -1
        self._status = 0
        self._length = -1
        self._chunked = False
        self._pos = 0
        self.error_body = b""
        """The body of the last response that was not a 200 (its start), for the report."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._head_end >= 0 and self._length < 0 and not self._chunked:
            waiter.set_result(self._status)  # a body delimited by the end of the connection
        else:
            waiter.set_exception(ResponseError(str(exc or "connection closed")))

    def send(self, payload: bytes) -> asyncio.Future[int]:
        """Write one request; the future holds the response's status once it is read whole."""
        assert self.transport is not None and not self.closed
        self._waiter = asyncio.get_running_loop().create_future()
        self._head_end, self._status, self._length, self._chunked = -1, 0, -1, False
        self.transport.write(payload)
        return self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._response_end()
        if end < 0:
            return
        if self._status != 200 and not self.error_body:
            self.error_body = bytes(self._buf[self._head_end : end])[:300]
        del self._buf[:end]
        waiter.set_result(self._status)

    def _response_end(self) -> int:
        """Where the response in the buffer ends, or -1 while it is incomplete."""
        buf = self._buf
        if self._head_end < 0:
            at = buf.find(b"\r\n\r\n")
            if at < 0:
                return -1
            self._head_end = self._pos = at + 4
            head = bytes(buf[:at]).lower().split(b"\r\n")
            self._status = int(head[0][9:12])
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value:
                    self._chunked = True
                elif name == b"connection" and b"close" in value:
                    self.reusable = False
        if self._chunked:
            while True:
                line_end = buf.find(b"\r\n", self._pos)
                if line_end < 0:
                    return -1
                size = int(bytes(buf[self._pos : line_end]).split(b";")[0], 16)
                if size == 0:
                    trailer_end = buf.find(b"\r\n\r\n", line_end)
                    return -1 if trailer_end < 0 else trailer_end + 4
                if len(buf) < line_end + 2 + size + 2:
                    return -1
                self._pos = line_end + 2 + size + 2
        if self._length >= 0 and len(buf) >= self._head_end + self._length:
            return self._head_end + self._length
        return -1


class Pool:
    """Keep-alive connections to one server, opened on demand and reused."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[Connection] = []
        self._all: list[Connection] = []

    async def acquire(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(
            Connection, self.host, self.port
        )
        self._all.append(conn)
        return conn

    def release(self, conn: Connection) -> None:
        if conn.closed or not conn.reusable:
            conn.close()
        else:
            self._idle.append(conn)

    @property
    def opened(self) -> int:
        return len(self._all)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()


def request_bytes(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
