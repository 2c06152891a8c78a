"""JSON request bodies already read: parsed and validated, errors saying what to fix.
Apart from ``bodies`` (which reads them off the socket) so that the heavy-work lane's
worker processes can import it without aiohttp (seconds of start-up on a loaded host)."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from tether.errors import BadRequest

__all__ = ["describe_validation_error", "parse_json", "validate"]

Model = TypeVar("Model", bound=BaseModel)


def _parse(body: bytes) -> Any:
    """orjson, not ``json``: it refuses nesting deeper than 1024 levels (``json`` recurses
    until RecursionError), invalid UTF-8 and lone surrogates, all of which would
    otherwise reach the audit trail."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None


def parse_json(body: bytes) -> Any:
    """A body already read: refused when empty or not JSON."""
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
