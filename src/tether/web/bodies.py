"""Request bodies: size-limited, JSON-parsed, validated; errors say what to fix."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from tether.errors import BadRequest, PayloadTooLarge, RequestTimeout

__all__ = [
    "BODY_TIMEOUT_KEY",
    "describe_validation_error",
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
    than the app's body timeout (``BODY_TIMEOUT_KEY``) for all of it."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit} bytes")
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


def _parse(body: bytes) -> Any:
    """orjson, not ``json``: it refuses nesting deeper than 1024 levels (``json`` recurses
    until RecursionError), invalid UTF-8 and lone surrogates, all of which would
    otherwise reach the audit trail."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None


async def read_json(request: web.Request, limit: int) -> Any:
    body = await read_limited(request, limit)
    if not body:
        raise BadRequest("the body is empty; send a JSON object", code="invalid_json")
    return _parse(body)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def validate(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid request: {describe_validation_error(exc)}") from None


async def read_model(request: web.Request, model: type[Model], limit: int) -> Model:
    return validate(model, await read_json(request, limit))


async def read_optional_model(request: web.Request, model: type[Model], limit: int) -> Model:
    """Like ``read_model``, but an empty body means the model's defaults."""
    body = await read_limited(request, limit)
    return validate(model, _parse(body) if body.strip() else {})
