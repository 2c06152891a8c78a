"""Connection limits aiohttp lacks: a cap on open connections and a deadline for a
request's headers, so slow or idle unauthenticated clients cannot hold sockets.

``GuardedSite`` wraps aiohttp's protocol factory. A connection must deliver a complete
request head (the request reaches ``request_started``) within ``header_timeout``
of connecting or of its first byte after a response; otherwise it is closed. Connections
over ``max_connections`` are answered 503 and closed at once. Idle keep-alive
connections are aiohttp's (``keepalive_timeout``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

__all__ = ["ConnectionGuard", "GuardedSite", "request_started"]

_BUSY_BODY = (
    b'{"error": {"code": "too_many_connections", '
    b'"message": "tether has too many open connections; try again shortly"}}'
)
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
    b"Content-Type: application/json\r\nRetry-After: 1\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)
_OPEN: dict[Any, _GuardedProtocol] = {}
"""Live guarded connections by transport, for the middleware to find its own."""


class ConnectionGuard:
    """Counts connections, and closes those past their header deadline: one timer looks
    at every open connection each quarter of ``header_timeout`` (so a deadline is kept
    to within a quarter of itself), rather than a timer armed and cancelled a request."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.refused = 0
        self._timer: asyncio.TimerHandle | None = None

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            if self.open >= self.max_connections:
                self.refused += 1
                return _Busy()
            return _GuardedProtocol(factory(), self)

        return make

    def opened(self) -> None:
        self.open += 1
        if self._timer is None:
            self._schedule()

    def closed(self) -> None:
        self.open -= 1

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.header_timeout / 4, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        cut_off = time.monotonic() - self.header_timeout
        late = [c for c in _OPEN.values() if c.guarded_by(self) and c.waiting_before(cut_off)]
        for connection in late:
            connection.expire()
        if self.open:
            self._schedule()


class _Busy(asyncio.Protocol):
    """Answers 503 and closes. uvloop's TCP transports do not subclass asyncio.Transport,
    so the transport is taken as the writable one it is rather than checked."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writable = cast(asyncio.WriteTransport, transport)
        writable.write(BUSY)
        writable.close()


class _GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's handler; notes since when it awaits a request head."""

    def __init__(self, inner: Any, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None
        self._waiting_since: float | None = None
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._waiting_since = time.monotonic()
        _OPEN[transport] = self
        self._guard.opened()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.closed()
        self._waiting_since = None
        _OPEN.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        self._in_request = True
        self._waiting_since = None

    def request_finished(self) -> None:
        self._in_request = False

    def guarded_by(self, guard: ConnectionGuard) -> bool:
        return self._guard is guard

    def waiting_before(self, moment: float) -> bool:
        """Awaiting a request head since ``moment`` or earlier (never while in a request:
        its start clears the wait, and bytes during it start none)."""
        since = self._waiting_since
        return since is not None and since <= moment

    def expire(self) -> None:
        self._waiting_since = None
        if self._transport is not None:
            self._transport.close()


def request_started(request: web.BaseRequest) -> _GuardedProtocol | None:
    """The request head arrived: its connection's header deadline no longer applies until
    ``request_finished`` is called on what this returns (None: not a guarded connection)."""
    connection = _OPEN.get(request.transport)
    if connection is not None:
        connection.request_started()
    return connection


class GuardedSite(web.TCPSite):
    """``TCPSite`` whose connections pass through ``guard``."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, **kwargs: Any
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
