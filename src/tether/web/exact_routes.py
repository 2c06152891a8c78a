"""A request for a path without variables (``POST /v1/messages``) goes straight to its
route's handler, skipping the router's walk and ``Application._handle``'s per-request
set-up (4 of the 46 µs CPU a ``GET /healthz`` costs, ``bench/web_layer_bench.py``; #29).
Everything else, and any request that asks ``Expect: 100-continue``, takes aiohttp's own
path, as does every request to an application with a host-name sub-application or an
old-style middleware."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial, update_wrapper

from aiohttp import hdrs, web
from aiohttp.abc import AbstractMatchInfo
from aiohttp.typedefs import Handler
from aiohttp.web_server import Server
from aiohttp.web_urldispatcher import (
    AbstractRoute,
    MatchedSubAppResource,
    PlainResource,
    UrlMappingMatchInfo,
)
from yarl import URL

__all__ = ["ExactRoutes", "ExactRoutesRunner"]


@dataclass(frozen=True, slots=True)
class _Probe:
    """What a router reads of a request to resolve a plain path: its method and path."""

    method: str
    rel_url: URL


@dataclass(frozen=True, slots=True)
class _Shortcut:
    route: AbstractRoute
    handler: Handler
    """The route's handler inside the application's middlewares."""


class ExactRoutes:
    """Built once the application is frozen; ``handle`` is the server's request handler."""

    def __init__(self, app: web.Application, fallback: Handler) -> None:
        self._app = app
        self._fallback = fallback
        self._shortcuts: dict[tuple[str, str], _Shortcut] = {}

    @classmethod
    async def of(cls, app: web.Application, fallback: Handler) -> ExactRoutes:
        """Only routes the router itself resolves to for their path and method are taken,
        so a shortcut never answers a request the router would have sent elsewhere."""
        routes = cls(app, fallback)
        resources = list(app.router.resources())
        if any(isinstance(resource, MatchedSubAppResource) for resource in resources):
            return routes  # a sub-application by host name: the Host header decides
        if not all(getattr(m, "__middleware_version__", None) == 1 for m in app.middlewares):
            return routes  # an old-style middleware: only aiohttp knows how to call it
        for resource in resources:
            if not isinstance(resource, PlainResource):
                continue
            for route in resource:
                if route.method == hdrs.METH_ANY:
                    continue
                path = resource.canonical
                resolved = await app.router.resolve(_Probe(route.method, URL(path)))  # type: ignore[arg-type]
                if isinstance(resolved, AbstractMatchInfo) and resolved.route is route:
                    routes._shortcuts[(route.method, path)] = _Shortcut(
                        route, routes._wrapped(route.handler)
                    )
        return routes

    def _wrapped(self, handler: Handler) -> Handler:
        for middleware in reversed(self._app.middlewares):
            handler = update_wrapper(partial(middleware, handler=handler), handler)
        return handler

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        shortcut = self._shortcuts.get((request.method, request.rel_url.path_safe))
        if shortcut is None or hdrs.EXPECT in request.headers:
            return await self._fallback(request)  # type: ignore[arg-type]
        match_info = UrlMappingMatchInfo({}, shortcut.route)
        match_info.add_app(self._app)
        match_info.freeze()
        request._match_info = match_info  # type: ignore[attr-defined]
        return await shortcut.handler(request)  # type: ignore[arg-type]


class ExactRoutesRunner(web.AppRunner):
    """aiohttp's runner whose server sends exact paths past the router."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        exact = await ExactRoutes.of(self.app, server.request_handler)
        server.request_handler = exact.handle
        return server
