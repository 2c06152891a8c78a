"""The one place where exceptions become HTTP responses.

A ``TetherError`` answers its code's status with ``{"error": {"code", "message"}}``;
anything unexpected answers a bare 500 and is logged server-side, never echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tether.errors import TetherError, status_for
from tether.redaction.text import redact_text

__all__ = ["ErrorRenderer", "error_response", "json_error", "set_error_renderer"]

log = logging.getLogger(__name__)

ErrorRenderer = Callable[[str, str], dict[str, Any]]

_RENDERER_KEY = web.AppKey("error_renderers", list[tuple[str, ErrorRenderer]])

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def default_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def set_error_renderer(app: web.Application, path_prefix: str, renderer: ErrorRenderer) -> None:
    """A front door whose protocol has its own error shape registers it for its paths."""
    app.setdefault(_RENDERER_KEY, []).append((path_prefix, renderer))


def json_error(
    request: web.Request,
    code: str,
    message: str,
    details: list[dict[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    renderer: ErrorRenderer = default_body
    for prefix, candidate in request.app.get(_RENDERER_KEY, []):
        if request.path.startswith(prefix):
            renderer = candidate
            break
    body = renderer(code, redact_text(message))  # shown to the caller: no credential in it
    if details is not None and renderer is default_body:
        body["error"]["details"] = details
    status = status_for(code)
    if 400 <= status < 500 and status != 429:
        # A refusal (a bad, expired, rotated or revoked key included) cannot succeed on a
        # retry: Claude Code and the SDKs stop at once on this header instead of backing off
        # (#23). The breaker's 429 keeps its retry-after and no such header.
        headers = {**(headers or {}), "x-should-retry": "false"}
    return web.json_response(body, status=status, headers=headers)


def error_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to what a handler raised; re-raises an HTTP redirect, which is no error."""
    if isinstance(exc, TetherError):
        return json_error(request, exc.code, exc.message, exc.details)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = HTTP_CODES.get(exc.status, "invalid_request")
        message = {
            "not_found": f"no route for {request.method} {request.path}",
            "method_not_allowed": f"{request.method} is not allowed on {request.path}",
        }.get(code, exc.reason)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(request, code, message, headers=allow)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return json_error(request, "internal_error", "tether hit an internal error; see its log")
