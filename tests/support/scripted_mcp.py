"""An MCP server over plain HTTP whose answers a test writes: for the upstream behaviours
a well-behaved server (the ``mcp`` package's) never shows — a 201, an array, a redirect,
a cookie, a bare-CR event stream, an answer too large. Each POST's JSON-RPC message goes
to the answer registered for its method; every request is kept."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = Callable[[dict[str, Any]], web.StreamResponse]

TOOLS = [
    {
        "name": "reindex",
        "description": "Rebuild the search index.",
        "inputSchema": {"type": "object", "properties": {"disk": {"type": "string"}}},
        "annotations": {"destructiveHint": True},
    },
    {
        "name": "echo",
        "description": "Say the text back.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
]


def result(message: dict[str, Any], value: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(
        {"jsonrpc": "2.0", "id": message["id"], "result": value}, status=status
    )


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


@dataclass
class Seen:
    method: str
    headers: dict[str, str]
    message: dict[str, Any] | None


@dataclass
class ScriptedMcp:
    tools: list[dict[str, Any]] = field(default_factory=lambda: [dict(t) for t in TOOLS])
    answers: dict[str, Answer] = field(default_factory=dict)
    """By JSON-RPC method: replaces the default answer."""
    get_stream: Callable[[web.Request], Any] | None = None
    """Serves the GET stream (the server's own requests); None: 405, as servers without one."""
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def _default(self, message: dict[str, Any]) -> web.StreamResponse:
        method = message.get("method")
        if "id" not in message:
            return web.Response(status=202)
        if method == "initialize":
            reply = result(
                message,
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "scripted", "version": "1"},
                },
            )
            reply.headers["Mcp-Session-Id"] = "scripted-session"
            return reply
        if method == "tools/list":
            return result(message, {"tools": self.tools})
        if method == "tools/call":
            return result(message, text_result(f"ran {message['params']['name']}"))
        return result(message, {})

    async def _post(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        message = json.loads(raw) if raw else None
        method = message.get("method", "answer") if isinstance(message, dict) else "?"
        self.seen.append(Seen(method, dict(request.headers), message))
        assert isinstance(message, dict)
        answer = self.answers.get(method, self._default)
        return answer(message)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen("GET", dict(request.headers), None))
        if self.get_stream is None:
            return web.Response(status=405)
        served: web.StreamResponse = await self.get_stream(request)
        return served

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen("DELETE", dict(request.headers), None))
        return web.Response(status=200)

    def calls(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]

    def start(self) -> ScriptedMcp:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def boot() -> int:
            app = web.Application()
            app.router.add_post("/mcp", self._post)
            app.router.add_get("/mcp", self._get)
            app.router.add_delete("/mcp", self._delete)
            app.router.add_route("*", "/elsewhere", self._post)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        port = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        self.url = f"http://localhost:{port}/mcp"  # a name: cookie jars refuse IPs
        return self

    def stop(self) -> None:
        assert self._loop is not None and self._runner is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
