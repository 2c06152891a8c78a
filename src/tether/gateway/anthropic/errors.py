"""Errors in the Anthropic wire format, so Claude Code and the SDKs show them to the user.

The status comes from tether's code (``status_for``); the Anthropic ``type`` from the status.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tether.errors import status_for
from tether.gateway.model.wire import no_retry_headers
from tether.redaction.text import redact_text

__all__ = ["anthropic_error_body", "anthropic_error_response", "sse_error_event"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    423: "permission_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error")


def anthropic_error_body(code: str, message: str) -> dict[str, Any]:
    status = status_for(code)
    return {
        "type": "error",
        "error": {"type": error_type_for(status), "message": message, "code": code},
    }


def anthropic_error_response(
    code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """4xx refusals tell the SDKs not to retry (``x-should-retry: false``): retrying a
    killed session or a denied action cannot succeed."""
    message = redact_text(message)
    status = status_for(code)
    all_headers = no_retry_headers(status, headers)
    return web.Response(
        body=orjson.dumps(anthropic_error_body(code, message)),
        status=status,
        content_type="application/json",
        headers=all_headers,
    )


def sse_error_event(error_type: str, message: str, code: str | None = None) -> bytes:
    error = {"type": error_type, "message": redact_text(message)} | ({"code": code} if code else {})
    data = orjson.dumps({"type": "error", "error": error})
    return b"event: error\ndata: " + data + b"\n\n"
