"""Admin API bodies for remote MCP servers (``/projects/{project}/mcp-servers``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tether.admin.schemas import Strict
from tether.admin.url_fields import HttpUrlText

__all__ = ["McpServerAdd", "McpServerOut", "McpToolOut"]


class McpServerAdd(Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="the server's name in the agent's URL /mcp/servers/NAME",
        examples=["github"],
    )
    url: HttpUrlText = Field(max_length=2048)
    auth: Literal["none", "bearer", "headers", "oauth"] = Field(
        "bearer", description="how tether authenticates to the server"
    )
    credential: str | None = Field(
        None,
        max_length=16384,
        description="bearer: the token; headers: a JSON object of header names to values; "
        "oauth: a JSON object with token_url, client_id, client_secret and optionally "
        "scope, audience, resource, client_auth (basic or post). Sealed at rest and never "
        "returned.",
    )


class McpToolOut(BaseModel):
    name: str
    state: Literal["pinned", "changed", "new"]
    destructive: bool


class McpServerOut(BaseModel):
    name: str
    project: str
    url: str
    auth: str
    agent_url: str = Field(description="the URL agents use, with their tether key as bearer")
    listed: bool = Field(description="tools have been listed (and pinned) once")
    withheld: list[str]
    tools: list[McpToolOut]
    created_at: str
    updated_at: str
