"""A one-line model call through tether's Messages door, as Claude Code sends it (its
session header), for tests that only need to know whether the call got through."""

from __future__ import annotations

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
