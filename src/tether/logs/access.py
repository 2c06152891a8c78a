"""One access-log line per request: method, path, status, duration, agent and session.
Never a key, a header or a query string (which could carry one)."""

from __future__ import annotations

import logging
import time as clock

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from tether.logs.request_scope import RequestScope, current_scope
from tether.logs.setup import direct_handler

__all__ = ["SCOPE_KEY", "AccessLogger", "begin_scope"]

SCOPE_KEY = web.RequestKey("tether_scope", RequestScope)
SESSION_HEADER = "tether-session-id"
LINE = "%s %s %s %.1fms agent=%s session=%s"


def begin_scope(request: web.Request) -> None:
    """A new scope for the request, seen by its task's pipeline and by its access line."""
    scope = RequestScope()
    request[SCOPE_KEY] = scope
    current_scope.set(scope)


class AccessLogger(AbstractAccessLogger):
    """Fields go to the record as ``extra`` too, so the JSON format gets them as keys.
    When only tether's stderr handler would see the line (the default), it is handed the
    line directly (``direct_handler``): the same line, without a ``LogRecord``."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        scope = request.get(SCOPE_KEY)
        agent = scope.agent if scope is not None else None
        session = scope.session if scope is not None else None
        session = session or response.headers.get(SESSION_HEADER)
        seconds = clock.perf_counter() - scope.started if scope is not None else time
        duration_ms = round(seconds * 1000, 2)
        method, path, status = request.method, request.path, response.status
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "agent": agent,
            "session": session,
        }
        shown = (method, path, status, duration_ms, agent or "-", session or "-")
        handler = direct_handler(self.logger, logging.INFO)
        if handler is not None:
            try:
                handler.emit_line(self.logger.name, logging.INFO, LINE % shown, fields)
                return
            except Exception:  # logging's own handling (handleError) then applies
                pass
        self.logger.info(LINE, *shown, extra=fields)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
