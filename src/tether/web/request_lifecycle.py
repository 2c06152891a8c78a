"""What every request goes through around its handler, in one frame: counted in flight
(a stop waits for it), given its log scope, freed from its connection's header deadline,
and any exception answered as JSON. One middleware rather than four: each layer is a
coroutine frame and a call on every request (#29)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from tether.logs.access import begin_scope
from tether.web.connections import request_started
from tether.web.errors import error_response
from tether.web.inflight_requests import InflightRequests

__all__ = ["RequestLifecycle"]


class RequestLifecycle:
    def __init__(self, inflight: InflightRequests) -> None:
        self._inflight = inflight

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = self._inflight.enter()
        connection = None
        try:
            begin_scope(request)
            connection = request_started(request)
            return await handler(request)
        except Exception as exc:
            return error_response(request, exc)
        finally:
            if connection is not None:
                connection.request_finished()
            self._inflight.leave(task)
