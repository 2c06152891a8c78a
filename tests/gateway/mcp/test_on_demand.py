"""``/mcp`` is built on its first call: calls that arrive together while it loads are all
answered, and a server that never gets one never loads the MCP SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.server import RunningTether

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "first-callers", "version": "1"},
    },
}
HEADERS = {"Accept": "application/json, text/event-stream"}


async def _initialize_together(url: str, key: str, callers: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {key}", **HEADERS}, timeout=60
    ) as client:
        return await asyncio.gather(
            *[client.post(f"{url}/mcp", json=INITIALIZE) for _ in range(callers)]
        )


def test_first_calls_that_arrive_together_are_all_answered(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    answers = asyncio.run(_initialize_together(tether.url, key, 8))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    results: list[dict[str, Any]] = [a.json()["result"] for a in answers]
    assert {r["serverInfo"]["name"] for r in results} == {"tether"}
    assert all("get_task" in r["instructions"] for r in results)
