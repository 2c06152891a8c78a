"""Refusals as Google APIs answer them: ``{"error": {"code", "message", "status"}}``.

The ``anthropic`` SDK's ``AnthropicVertex`` and Claude Code show ``error.message``, so
tether's reason reaches the user. Refusals by tether's controls keep their status (423,
402, 403) and carry ``x-should-retry: false``; the breaker's 429 (``RESOURCE_EXHAUSTED``,
with ``retry-after``) is the one to back off from.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from tether.errors import status_for
from tether.gateway.model.wire import no_retry_headers

__all__ = ["google_status", "vertex_error_body", "vertex_error_response"]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    423: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_status(status: int) -> str:
    return _STATUS.get(status, "FAILED_PRECONDITION" if status < 500 else "INTERNAL")


def vertex_error_body(code: str, message: str) -> dict[str, object]:
    status = status_for(code)
    return {
        "error": {
            "code": status,
            "message": message,
            "status": google_status(status),
            "details": [{"@type": "tether.dev/refusal", "reason": code}],
        }
    }


def vertex_error_response(
    code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    status = status_for(code)
    all_headers = no_retry_headers(status, headers)
    return web.Response(
        body=orjson.dumps(vertex_error_body(code, message)),
        status=status,
        content_type="application/json",
        headers=all_headers,
    )
