"""Admin routes declare their method, path, body and response models once:
the router and the OpenAPI document are both built from that declaration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

__all__ = ["PREFIX", "AdminRoute", "RouteTable"]

PREFIX = "/admin/v1"


@dataclass(frozen=True, slots=True)
class AdminRoute:
    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    many: bool
    status: int = 200
    """The success status (201 for creations; 204 when there is no response body)."""
    optional_body: bool = False
    """An empty body means the model's defaults (``read_optional_model``)."""
    media_type: str = "application/json"
    also: tuple[int, ...] = ()
    """Other success statuses with the same body (200 for a policy already in force)."""

    @property
    def writes(self) -> bool:
        return self.method != "GET"


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[AdminRoute] = []

    def route(
        self,
        method: str,
        path: str,
        name: str,
        summary: str,
        *,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        many: bool = False,
        status: int | None = None,
        optional_body: bool = False,
        media_type: str = "application/json",
        also: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        success = status if status is not None else 200 if response is not None else 204

        def register(handler: Handler) -> Handler:
            self.routes.append(
                AdminRoute(
                    method,
                    path,
                    name,
                    summary,
                    handler,
                    body,
                    response,
                    many,
                    success,
                    optional_body,
                    media_type,
                    also,
                )
            )
            return handler

        return register

    def add_to(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler, name=route.name)


routes = RouteTable()
