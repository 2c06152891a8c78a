"""Calls through tether's front doors for tests that only need to know whether a call got
through: a model call as Claude Code sends it (its session header), and a POST that
retries a busy database's 503 as SDK clients do."""

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
        headers=claude_code_headers(key, session),
    )


async def post_retrying_busy(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Response, list[str]]:
    """A POST whose 503 (the database too busy, on a starved machine) is retried twice, as
    SDK clients retry it; with the 503s' messages."""
    busy: list[str] = []
    for _ in range(3):
        response = await client.post(url, json=body, headers=headers)
        if response.status_code != 503:
            break
        busy.append(response.json()["error"]["message"])
        await asyncio.sleep(0.5)
    return response, busy


def claude_code_headers(key: str, session: str) -> dict[str, str]:
    return {
        "x-api-key": key,
        "anthropic-version": "2023-06-01",
        "X-Claude-Code-Session-Id": session,
    }
