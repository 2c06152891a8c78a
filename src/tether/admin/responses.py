"""Admin responses: pydantic models serialised the same way everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from pydantic import BaseModel

__all__ = ["model_list_response", "model_response"]


def model_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )


def model_list_response(models: Sequence[BaseModel]) -> web.Response:
    body = b"[" + b",".join(m.model_dump_json().encode() for m in models) + b"]"
    return web.Response(body=body, content_type="application/json")
