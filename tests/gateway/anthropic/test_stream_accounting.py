"""What a stream costs is what upstream generated: covered as it streams, cut when a
budget cannot cover more, and settled in full when the client leaves early."""

from __future__ import annotations

import json
import time

import httpx
import pytest

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


def test_a_200_that_is_not_a_message_is_an_upstream_error_charged_at_the_worst_case(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("garbled", "p")
    upstream.fake.enqueue(FakeReply(kind="garbage"), FakeReply(kind="garbage"))
    whole = httpx.post(
        f"{gateway.url}/v1/messages",
        json={**stream_body(300), "stream": False},
        headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": "garbage-json"},
        timeout=30,
    )
    assert whole.status_code == 502
    assert "answered 200 but its answer is not a message" in whole.json()["error"]["message"]
    streamed = httpx.post(
        f"{gateway.url}/v1/messages",
        json=stream_body(300),
        headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": "garbage-sse"},
        timeout=30,
    )
    assert "event: error" in streamed.text and "not a message" in streamed.text
    for session in ("garbage-json", "garbage-sse"):
        settled = completed(gateway, session)
        assert settled["result"] == "error" and settled["code"] == "http_502"
        assert settled["attributes"]["usage_final"] is False, "charged as a cut answer"
        assert settled["attributes"]["cost_usd"] > 300 * 10 / 1_000_000, "max_tokens at least"


def test_a_client_that_gives_up_cancels_the_upstream_call_and_its_hold(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("impatient", "p")
    gateway.call("PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 5})
    upstream.fake.enqueue(FakeReply(delay=30))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.url}/v1/messages",
            json={**stream_body(300), "stream": False},
            headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": "gave-up"},
            timeout=1,
        )
    settled = completed(gateway, "gave-up")
    assert upstream.fake.abandoned == 1, "tether hung up on upstream too"
    assert settled["result"] == "abandoned"
    assert "left before upstream answered" in settled["reason"]
    budget = next(b for b in gateway.call("GET", "/budgets").json() if b["period"] == "daily")
    assert budget["reserved_usd"] == 0, "the hold went back long before upstream's 30 s"
