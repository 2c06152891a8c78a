"""tether's MCP server: ``get_task``, ``checkpoint``, ``next_batch``, ``complete_batch``,
served over streamable HTTP at ``/mcp`` with the agent key as bearer.

The tools only translate: each calls the same ``TaskDesk`` as ``/v1/tasks`` with the
caller's key and session headers, and a tether refusal becomes an MCP tool error carrying
tether's code and message. The SDK's transport runs stateless with JSON answers, so any
replica can serve any call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from tether.errors import TetherError
from tether.gateway.anthropic.proxy import session_id_from
from tether.gateway.credentials import presented_credential
from tether.gateway.mcp.asgi_bridge import ASGIApp
from tether.gateway.mcp.routes import PATH
from tether.tasks.desk import Checkpoint, Completion, TaskDesk

__all__ = ["build_mcp_app", "build_mcp_server"]

SOURCE = "mcp"
INSTRUCTIONS = (
    "tether keeps your task outside your context. Call get_task after any compaction or "
    "when unsure what to do; write a checkpoint (done, next, decisions) after each step; "
    "take work only with next_batch and report every batch with complete_batch, "
    "including its verification outcome."
)


def _caller(ctx: Context[Any, Any]) -> tuple[str | None, str | None]:
    headers = ctx.headers or {}
    return presented_credential(headers), session_id_from(headers)


async def _run(work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    try:
        return await work()
    except TetherError as exc:
        raise ToolError(f"tether: {exc.message} [{exc.code}]") from None


def _quiet_server() -> MCPServer[Any]:
    """The SDK configures the root logger when a server is built; tether owns logging, so
    that is undone, and the SDK's per-request INFO lines are left to tether's access log."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server: MCPServer[Any] = MCPServer("tether", instructions=INSTRUCTIONS, log_level="WARNING")
    root.handlers[:], root.level = handlers, level
    logging.getLogger("mcp").setLevel(logging.WARNING)
    return server


def build_mcp_server(desk: TaskDesk) -> MCPServer[Any]:
    server = _quiet_server()

    @server.tool()
    async def get_task(ctx: Context[Any, Any], task_id: str | None = None) -> dict[str, Any]:
        """Your task as tether holds it: goal, constraints, acceptance checks, progress of
        its batches and the latest checkpoint. Omit task_id for your current task."""
        key, session = _caller(ctx)
        return await _run(lambda: desk.get_task(key, task_id, session, SOURCE))

    @server.tool()
    async def checkpoint(
        ctx: Context[Any, Any],
        done: str,
        next: str = "",
        decisions: list[str] | None = None,
        notes: str = "",
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """Record where you are: what is done, what comes next, decisions taken, notes.
        tether gives the latest checkpoint back to you after a compaction."""
        key, session = _caller(ctx)
        point = Checkpoint(done, next, list(decisions or []), notes)
        return await _run(lambda: desk.checkpoint(key, task_id, session, SOURCE, point))

    @server.tool()
    async def next_batch(ctx: Context[Any, Any], task_id: str | None = None) -> dict[str, Any]:
        """The next batch of work items, claimed for your session (the same batch again
        while you hold one). Work on exactly these items, then call complete_batch."""
        key, session = _caller(ctx)
        return await _run(lambda: desk.next_batch(key, task_id, session, SOURCE))

    @server.tool()
    async def complete_batch(
        ctx: Context[Any, Any],
        batch: int,
        passed: bool,
        output: str = "",
        results: Any = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """Report a batch: whether its verification passed, the verification's output and
        what was done to each item. A failed verification stops the task for an operator."""
        key, session = _caller(ctx)
        done = Completion(batch, passed, output, results)
        return await _run(lambda: desk.complete_batch(key, task_id, session, SOURCE, done))

    return server


def build_mcp_app(desk: TaskDesk) -> tuple[MCPServer[Any], ASGIApp]:
    """The server and its streamable-HTTP application at ``PATH``: stateless, JSON answers."""
    server = build_mcp_server(desk)
    asgi: ASGIApp = server.streamable_http_app(
        streamable_http_path=PATH,
        json_response=True,
        stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server, asgi
