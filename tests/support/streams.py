"""Reading a Messages stream through tether as a client would, timing how it ends."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx

MODEL = "claude-sonnet-5"


@dataclass
class StreamRecord:
    events: list[tuple[str, dict]] = field(default_factory=list)
    first_delta: asyncio.Event = field(default_factory=asyncio.Event)
    ended_at: float = 0.0
    status: int = 0

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    @property
    def error(self) -> dict | None:
        return next((data for name, data in self.events if name == "error"), None)

    @property
    def completed(self) -> bool:
        return "message_stop" in self.names


async def read_stream(client: httpx.AsyncClient, key: str, session: str) -> StreamRecord:
    record = StreamRecord()
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "long answer please"}],
    }
    headers = {
        "x-api-key": key,
        "X-Claude-Code-Session-Id": session,
        "anthropic-version": "2023-06-01",
    }
    async with client.stream("POST", "/v1/messages", json=body, headers=headers) as response:
        record.status = response.status_code
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                record.events.append((name, json.loads(line[5:])))
                if name == "content_block_delta":
                    record.first_delta.set()
    record.ended_at = time.monotonic()
    record.first_delta.set()
    return record
