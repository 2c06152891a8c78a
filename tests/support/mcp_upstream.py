"""A real MCP server (the ``mcp`` package) on loopback that requires a bearer token: the
upstream tether's MCP door relays to. Served by uvicorn in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations

from tests.support.server import free_port

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class RunningMcpUpstream:
    url: str
    token: str
    server: MCPServer[Any]
    _uvicorn: uvicorn.Server
    _thread: threading.Thread
    calls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    peers: list[int] = field(default_factory=list)
    """The client port of each POST (the calls; the client's long-lived GET stream has
    a connection of its own): one port for many POSTs is one pooled connection."""
    echo_times: int = 1
    """``echo`` says its text this many times (a long answer from a short call)."""

    def describe(self, tool: str, description: str) -> None:
        """Change a tool's description as a poisoned server would."""
        self.server._tool_manager._tools[tool].description = description

    def add_tool(self, name: str) -> None:
        def fresh(text: str) -> str:
            return f"{name}: {text}"

        self.server.tool(name=name, description=f"The {name} tool.")(fresh)

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(10)


def _bearer_only(
    app: Any, accepts: Callable[[str], bool], seen: list[str], peers: list[int]
) -> Any:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            authorization = headers.get(b"authorization", b"").decode()
            seen.append(authorization)
            if scope["method"] == "POST":
                peers.append(scope["client"][1] if scope.get("client") else 0)
            if not accepts(authorization.removeprefix("Bearer ")):
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"bad token"})
                return
        await app(scope, receive, send)

    return guarded


def start_mcp_upstream(
    json_response: bool = False, accepts: Callable[[str], bool] | None = None
) -> RunningMcpUpstream:
    """``accepts``: which bearer tokens the server takes (by default only its own)."""
    token = f"upstream-secret-{uuid.uuid4().hex}"
    server: MCPServer[Any] = MCPServer("warehouse", log_level="WARNING")
    port = free_port()
    running: RunningMcpUpstream

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def query_db(table: str) -> str:
        """Read rows from a table of the warehouse."""
        running.calls.append(f"query_db:{table}")
        return f"3 rows from {table}"

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    def drop_table(table: str) -> str:
        """Drop a table of the warehouse."""
        running.calls.append(f"drop_table:{table}")
        return f"dropped {table}"

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        running.calls.append(f"echo:{text}")
        return text * running.echo_times

    @server.tool()
    def export_secrets() -> str:
        """Export every secret of the warehouse."""
        running.calls.append("export_secrets")
        return "secrets"

    @server.tool()
    async def slow(seconds: float) -> str:
        """Work for a while."""
        running.calls.append("slow")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            running.cancelled.append("slow")
            raise
        return "finished"

    app = server.streamable_http_app(
        json_response=json_response,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    authorizations: list[str] = []
    peers: list[int] = []
    config = uvicorn.Config(
        _bearer_only(app, accepts or token.__eq__, authorizations, peers),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True, name="mcp-upstream")
    running = RunningMcpUpstream(
        f"http://127.0.0.1:{port}/mcp",
        token,
        server,
        runner,
        thread,
        authorizations=authorizations,
        peers=peers,
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the MCP upstream did not start")
        time.sleep(0.02)
    return running
