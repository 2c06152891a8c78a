"""What a stream costs is what upstream generated: covered as it streams, cut when a
budget cannot cover more, and settled in full when the client leaves early."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply

MODEL = "claude-sonnet-5"  # $10 per million output tokens
HEADERS = {"anthropic-version": "2023-06-01"}


def stream_body(max_tokens: int) -> dict:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "stream": True,
        "messages": [{"role": "user", "content": "write the migration"}],
    }


def completed(tether: RunningTether, session: str) -> dict:
    deadline = time.monotonic() + 40
    while True:
        events = tether.call(
            "GET", "/audit", params={"session": session, "action": "model:messages:completed"}
        ).json()
        if events:
            return events[-1]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "the stream was never settled"
        time.sleep(0.05)


def test_a_stream_the_budget_cannot_cover_is_cut_with_a_clear_error(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("writer", "p")
    gateway.call("PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.05})
    upstream.fake.default = FakeReply(
        output_tokens=20_000, chunks=200, chunk_delay=0.002, fill_text=True
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=stream_body(20_000),
        headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": "long"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, "$0.05 covers the first increment"
        text = response.read().decode()
    assert "event: error" in text and "message_stop" not in text
    error = json.loads(text.split("event: error\ndata: ")[1].split("\n")[0])["error"]
    assert error["type"] == "billing_error" and error["code"] == "budget_exceeded"
    assert "per-session budget of project 'p'" in error["message"]
    assert "the answer was stopped after about" in error["message"]
    settled = completed(gateway, "long")
    assert settled["result"] == "cut"
    cost = settled["attributes"]["cost_usd"]
    assert 0.02 < cost <= 0.05 + 2048 * 10 / 1_000_000, cost
    assert gateway.call("GET", "/sessions/long").json()["state"] == "budget_exhausted"


def test_a_client_that_leaves_early_is_charged_what_upstream_generated(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("quitter", "p")
    upstream.fake.default = FakeReply(
        output_tokens=5000, chunks=50, chunk_delay=0.01, fill_text=True
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=stream_body(5000),
        headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": "left"},
        timeout=30,
    ) as response:
        deltas = 0
        for line in response.iter_lines():
            deltas += line.startswith("event: content_block_delta")
            if deltas == 4:
                break
    settled = completed(gateway, "left")
    assert settled["result"] == "abandoned"
    assert settled["attributes"]["usage"]["output_tokens"] == 5000, "read to the end upstream"
    assert settled["attributes"]["cost_usd"] >= 5000 * 10 / 1_000_000
