"""Calls tether's MCP tools with the ``mcp`` client library, over streamable HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


class ToolFailed(Exception):
    """The tool answered ``isError`` (a tether refusal): its text."""


async def _call_all(
    url: str, key: str, calls: list[tuple[str, dict[str, Any]]], headers: dict[str, str]
) -> list[Any]:
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}", **headers}, timeout=30)
    answers: list[Any] = []
    async with (
        client,
        streamable_http_client(f"{url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        assert {"get_task", "checkpoint", "next_batch", "complete_batch"} <= {
            t.name for t in tools.tools
        }
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            text = "".join(getattr(c, "text", "") for c in result.content)
            if result.is_error:
                answers.append(ToolFailed(text))
            elif result.structured_content is not None:
                content = result.structured_content
                answers.append(content.get("result", content) if len(content) == 1 else content)
            else:
                answers.append(json.loads(text))
    return answers


def call_tools(
    url: str,
    key: str,
    calls: list[tuple[str, dict[str, Any]]],
    headers: dict[str, str] | None = None,
) -> list[Any]:
    """Each call's structured answer, or a ``ToolFailed`` with the tool's error text."""
    return asyncio.run(_call_all(url, key, calls, headers or {}))
