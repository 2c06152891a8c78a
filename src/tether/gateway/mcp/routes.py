"""``/mcp``: tether's MCP server, built on the first call.

The MCP SDK costs a running server about 20 MiB and 0.4 s of imports (a pydantic model
for every message of every protocol version), which a fleet that never calls ``/mcp``
should not carry. The first call imports and builds the server in a thread, so the event
loop keeps serving everyone else meanwhile; calls that arrive during the load wait for it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from aiohttp import web

from tether.errors import TetherError
from tether.gateway.mcp.asgi_bridge import ASGIApp, serve_asgi
from tether.tasks.desk import TaskDesk
from tether.web.bodies import read_limited

__all__ = ["PATH", "McpUnavailable", "TaskServerOnDemand", "add_mcp_routes"]

PATH = "/mcp"
log = logging.getLogger(__name__)


class McpUnavailable(TetherError):
    """tether's MCP server could not be started; the next call tries again."""

    code = "mcp_unavailable"


class TaskServerOnDemand:
    """The MCP server and its session manager, started once, by whichever call comes
    first; ``close`` stops the session manager if it was ever started."""

    def __init__(self, desk: TaskDesk) -> None:
        self._desk = desk
        self._app: ASGIApp | None = None
        self._loading: asyncio.Future[ASGIApp] | None = None
        self._stop = asyncio.Event()
        self._running: asyncio.Task[None] | None = None

    async def app(self) -> ASGIApp:
        if self._app is not None:
            return self._app
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        try:
            return await asyncio.shield(self._loading)
        except Exception as exc:
            self._loading = None
            log.exception("tether's MCP server could not be started")
            raise McpUnavailable(
                f"tether's MCP server could not be started ({type(exc).__name__}); "
                "try again, and see tether's log"
            ) from None

    def _build(self) -> tuple[Any, ASGIApp]:
        module = importlib.import_module("tether.gateway.mcp.server")
        built: tuple[Any, ASGIApp] = module.build_mcp_app(self._desk)
        return built

    async def _load(self) -> ASGIApp:
        server, asgi = await asyncio.to_thread(self._build)
        await self._start(server)
        self._app = asgi
        return asgi

    async def _start(self, server: Any) -> None:
        ready = asyncio.Event()

        async def run() -> None:
            async with server.session_manager.run():
                ready.set()
                await self._stop.wait()

        self._running = asyncio.create_task(run(), name="mcp-session-manager")
        waiting = asyncio.ensure_future(ready.wait())
        await asyncio.wait({self._running, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if self._running.done():
            waiting.cancel()
            self._running.result()

    async def close(self) -> None:
        self._stop.set()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)


def add_mcp_routes(app: web.Application, desk: TaskDesk, body_limit: int) -> None:
    """Mount ``/mcp``; the server is built on its first call and stopped with the app."""
    on_demand = TaskServerOnDemand(desk)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await read_limited(request, body_limit) if request.can_read_body else b""
        return await serve_asgi(request, await on_demand.app(), body)

    async def close(_app: web.Application) -> None:
        await on_demand.close()

    app.on_cleanup.append(close)
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, PATH, handle)
