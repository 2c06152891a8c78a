"""The admin API's OpenAPI 3.1 document, built from the route declarations."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from tether.admin.projects import PROVIDERS
from tether.admin.routing import PREFIX, AdminRoute, RouteTable

__all__ = ["openapi_document"]

REF = "#/components/schemas/{model}"
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "provider": {"type": "string", "enum": sorted(PROVIDERS - {"aws"})},
}
"""Path parameters narrower than any string. The AWS credential is set through its own
route (``/projects/{project}/aws``): a plain secret is not enough for it."""


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _links(route: AdminRoute, table: RouteTable) -> dict[str, Any]:
    """A creation's name feeds the operations on what it created (``POST /projects`` →
    ``GET /projects/{project}``), so clients and fuzzers follow them by name, not id."""
    if route.status != 201 or "{" in route.path or route.response is None:
        return {}
    fields = route.response.model_fields
    if "name" in fields:
        pointer = "$response.body#/name"
    elif "agent" in fields and fields["agent"].annotation is not str:
        pointer = "$response.body#/agent/name"
    else:
        return {}
    links: dict[str, Any] = {}
    for other in table.routes:
        param = re.match(re.escape(route.path) + r"/{(\w+)}", other.path)
        if param is not None:
            links[other.name] = {
                "operationId": other.name,
                "parameters": {param.group(1): pointer},
            }
    return links


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
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": PATH_SCHEMAS.get(name, {"type": "string"}),
                }
                for name in re.findall(r"{(\w+)}", route.path)
            ],
            "responses": {"4XX": error, "503": error},
            "security": [{"adminToken": []}],
        }
        if route.body is not None:
            operation["requestBody"] = {
                "required": not route.optional_body,
                "content": {"application/json": {"schema": _schema(route.body, components)}},
            }
        if route.status == 204:
            operation["responses"]["204"] = {"description": "done"}
        else:
            schema: dict[str, Any] = {}
            if route.response is not None:
                schema = _schema(route.response, components)
                if route.many:
                    schema = {"type": "array", "items": schema}
            for status in (route.status, *route.also):
                operation["responses"][str(status)] = {
                    "description": "created" if status == 201 else "ok",
                    "content": {route.media_type: {"schema": schema}},
                }
        links = _links(route, table)
        if links:
            operation["responses"][str(route.status)]["links"] = links
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


_DOCUMENTS: dict[tuple[Any, ...], bytes] = {}
"""Documents already built in this process, by what they are built from (a route's
handler aside): building one takes 50-75 ms of pydantic's schema generation,
and a process that builds the app again (a test suite, a reload) gets the same one."""


def _described(route: AdminRoute) -> tuple[Any, ...]:
    return tuple(getattr(route, f.name) for f in fields(route) if f.name != "handler")


def add_openapi_route(app: web.Application, table: RouteTable, version: str) -> None:
    key = (version, *(_described(route) for route in table.routes))
    document = _DOCUMENTS.get(key)
    if document is None:
        document = _DOCUMENTS[key] = json.dumps(openapi_document(table, version)).encode()

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get("/openapi.json", serve, name="openapi")
