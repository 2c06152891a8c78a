"""Request bodies: size-limited, JSON-parsed, validated; errors say what to fix."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from tether.errors import PayloadTooLarge, RequestTimeout
from tether.web.json_values import _parse, describe_validation_error, parse_json, validate

__all__ = [
    "BODY_TIMEOUT_KEY",
    "describe_validation_error",
    "parse_json",
    "read_json",
    "read_limited",
    "read_model",
    "read_optional_model",
    "validate",
]

Model = TypeVar("Model", bound=BaseModel)
BODY_TIMEOUT_KEY = web.AppKey("body_read_timeout", float)
DEFAULT_BODY_TIMEOUT = 60.0


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing to buffer more than ``limit`` bytes or to wait longer
    than the app's body timeout (``BODY_TIMEOUT_KEY``) for all of it. A body already
    received whole (most are: they arrive with their headers) is taken as it is, without
    arming a timer."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit} bytes")
    content = request.content
    if content.is_eof():  # all of it came with the headers: nothing to wait for
        body = content.read_nowait()
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        return body
    seconds = request.app.get(BODY_TIMEOUT_KEY, DEFAULT_BODY_TIMEOUT)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {seconds:g} s (TETHER_BODY_TIMEOUT)"
        ) from None
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int) -> Any:
    return parse_json(await read_limited(request, limit))


async def read_model(request: web.Request, model: type[Model], limit: int) -> Model:
    return validate(model, await read_json(request, limit))


async def read_optional_model(request: web.Request, model: type[Model], limit: int) -> Model:
    """Like ``read_model``, but an empty body means the model's defaults."""
    body = await read_limited(request, limit)
    return validate(model, _parse(body) if body.strip() else {})
