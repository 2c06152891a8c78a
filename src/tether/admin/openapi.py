"""The admin API's OpenAPI 3.1 document, built from the route declarations."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from tether.admin.routing import PREFIX, RouteTable

__all__ = ["openapi_document"]

REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def openapi_document(table: RouteTable, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }
    for route in table.routes:
        operation: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", route.path)
            ],
            "responses": {"4XX": error, "503": error},
            "security": [{"adminToken": []}],
        }
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(route.body, components)}},
            }
        if route.response is not None:
            schema = _schema(route.response, components)
            if route.many:
                schema = {"type": "array", "items": schema}
            operation["responses"]["200"] = {
                "description": "ok",
                "content": {"application/json": {"schema": schema}},
            }
        else:
            operation["responses"]["204"] = {"description": "done"}
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    components["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tether admin API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def add_openapi_route(app: web.Application, table: RouteTable, version: str) -> None:
    document = openapi_document(table, version)

    async def serve(_request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", serve, name="openapi")
