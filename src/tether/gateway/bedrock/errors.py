"""Refusals as Amazon Bedrock answers them: ``{"message": …}`` named by ``x-amzn-ErrorType``.

The Bedrock SDKs (boto3, the ``anthropic`` SDK's ``AnthropicBedrock``, Claude Code) raise
them with tether's reason as the message. Refusals by tether's controls keep their status
(423 a kill or a guard, 402 a budget, 403 a policy) so Claude Code shows the reason as it
is, and carry ``x-should-retry: false``: retrying them cannot succeed. Only the breaker's
429 is a ``ThrottlingException`` to back off from.
"""

from __future__ import annotations

import uuid

import orjson
from aiohttp import web

from tether.errors import status_for
from tether.gateway.model.wire import no_retry_headers

__all__ = ["bedrock_error_body", "bedrock_error_response", "bedrock_error_type"]

_TYPES = {
    400: "ValidationException",
    404: "ResourceNotFoundException",
    405: "ValidationException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    415: "ValidationException",
    422: "ValidationException",
    429: "ThrottlingException",
    500: "InternalServerException",
    502: "InternalServerException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}


def bedrock_error_type(status: int) -> str:
    return _TYPES.get(status, "AccessDeniedException")


def bedrock_error_body(code: str, message: str) -> dict[str, str]:
    return {"message": message}


def bedrock_error_response(
    code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    status = status_for(code)
    all_headers = no_retry_headers(status, headers)
    all_headers["x-amzn-ErrorType"] = bedrock_error_type(status)
    all_headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return web.Response(
        body=orjson.dumps({"message": message}),
        status=status,
        content_type="application/json",
        headers=all_headers,
    )
