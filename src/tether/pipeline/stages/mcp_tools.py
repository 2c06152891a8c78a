"""Stage 3b: an upstream MCP server's tool runs only as it was pinned. A tool whose
description or schema changed since an operator last accepted it, or that appeared after
the first listing, is refused until ``tether mcp accept``; a tool annotated
``destructiveHint`` is marked a deletion, so the approval stage asks a human."""

from __future__ import annotations

from tether.mcp_servers.registry import McpRegistry
from tether.pipeline.action import Action, Context, Deny, Verdict

__all__ = ["SOURCE", "EnforceToolPins"]

SOURCE = "mcp_server"
"""The source of actions from the MCP server door; other sources pass through."""


class EnforceToolPins:
    def __init__(self, registry: McpRegistry) -> None:
        self._registry = registry

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        server_name = action.attributes.get("mcp_server")
        tool = action.attributes.get("mcp_tool")
        if action.source != SOURCE or not isinstance(server_name, str) or not tool:
            return None
        assert ctx.identity is not None
        server = await self._registry.get(ctx.identity.project.id, server_name)
        if action.attributes.get("mcp_kind") != "tool":
            return None
        pin = server.tools.get(tool)
        if pin is None:
            return Deny(
                "mcp_tool_unknown",
                f"tool {tool} of MCP server {server_name} has not been listed through tether; "
                "list the server's tools first (tools/list)",
            )
        if pin.withheld:
            what = "appeared after the first listing" if pin.pinned is None else "changed"
            return Deny(
                "mcp_tool_withheld",
                f"tool {tool} of MCP server {server_name} {what} (its description or schema "
                f"is not the one pinned); withheld until an operator runs "
                f"`tether mcp accept {server_name}`",
            )
        action.destructive = pin.destructive
        return None
