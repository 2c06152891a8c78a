"""Model calls through tether's Messages door for tests that only need to know whether a
call got through: one as Claude Code sends it (its session header), and many at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.server import RunningTether


def model_call(gateway: RunningTether, key: str, session: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/messages",
        json={
            "model": "claude-haiku-5-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={
            "x-api-key": key,
            "X-Claude-Code-Session-Id": session,
            "anthropic-version": "2023-06-01",
        },
    )


async def post_retrying_busy(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str, session: str
) -> tuple[httpx.Response, list[str]]:
    """A Messages call (Claude Code's headers) whose 503 (the database too busy, on a
    starved machine) is retried twice, as SDK clients retry it; with the 503s' messages."""
    busy: list[str] = []
    for _ in range(3):
        response = await client.post(
            url,
            json=body,
            headers={
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Claude-Code-Session-Id": session,
            },
        )
        if response.status_code != 503:
            break
        busy.append(response.json()["error"]["message"])
        await asyncio.sleep(0.5)
    return response, busy
