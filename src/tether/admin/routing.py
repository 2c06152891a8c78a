"""Admin routes declare their method, path, body and response models once:
the router and the OpenAPI document are both built from that declaration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

__all__ = ["PREFIX", "AdminRoute", "RouteTable"]

PREFIX = "/admin/v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                AdminRoute(method, path, name, summary, handler, body, response, many)
            )
            return handler

        return register

    def add_to(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler, name=route.name)


routes = RouteTable()
