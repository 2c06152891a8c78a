"""What a stream costs is what upstream generated: covered as it streams, cut when a
budget cannot cover more, and settled in full when the client leaves early."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
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


@dataclass
class CutStream:
    error: dict
    delivered_text: str
    """The text the agent received before the cut."""


def cut_stream(tether: RunningTether, key: str, session: str, why: str = "") -> CutStream:
    """Streams a long answer through ``tether``: it starts (200) and is cut with an SSE
    error."""
    with httpx.stream(
        "POST",
        f"{tether.url}/v1/messages",
        json=stream_body(20_000),
        headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": session},
        timeout=60,
    ) as response:
        assert response.status_code == 200, why
        text = response.read().decode()
    assert "event: error" in text and "message_stop" not in text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    delivered = "".join(
        e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta"
    )
    return CutStream(events[-1]["error"], delivered)


def test_a_stream_the_budget_cannot_cover_is_cut_with_a_clear_error(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("writer", "p")
    gateway.call("PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.05})
    upstream.fake.default = FakeReply(
        output_tokens=20_000, chunks=200, chunk_delay=0.002, fill_text=True
    )
    cut = cut_stream(gateway, key, "long", "$0.05 covers the first increment")
    error = cut.error
    assert error["type"] == "billing_error" and error["code"] == "budget_exceeded"
    assert "per-session budget of project 'p'" in error["message"]
    assert "the answer was stopped after about" in error["message"]
    delivered_tokens = len(cut.delivered_text.encode()) / 3
    assert delivered_tokens <= 0.05 * 1_000_000 / 10, "the agent got no more than $0.05 covers"
    settled = completed(gateway, "long")
    assert settled["result"] == "cut"
    usage = settled["attributes"]["usage"]
    seen = usage["output_tokens"]
    assert seen >= delivered_tokens, "upstream generated at least what the agent got"
    charged_output = (seen + 2048) * 10 / 1_000_000
    input_at_most = usage["input_tokens"] * 4 / 1_000_000
    cost = settled["attributes"]["cost_usd"]
    assert charged_output <= cost <= charged_output + input_at_most, (cost, usage)
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


def test_a_message_whose_content_is_not_a_list_is_relayed_and_charged_its_usage(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """An upstream not quite Anthropic's (a custom base URL) answers a message whose
    ``content`` is a number: reading its tool calls raised, the agent got a 500, and the
    call was settled ``ok`` with no usage, costing nothing."""
    key = gateway.create_agent("odd", "p")
    upstream.fake.enqueue(FakeReply(kind="odd_content"))
    answer = httpx.post(
        f"{gateway.url}/v1/messages",
        json={**stream_body(300), "stream": False},
        headers=HEADERS | {"x-api-key": key, "X-Tether-Session-Id": "odd-content"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    settled = completed(gateway, "odd-content")
    assert settled["result"] == "ok"
    assert settled["attributes"]["usage"]["output_tokens"] == 1000
    assert settled["attributes"]["cost_usd"] > 0


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
    deadline = time.monotonic() + 10  # the fake looks for a closed connection every 50 ms
    while upstream.fake.abandoned == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.fake.abandoned == 1, "tether hung up on upstream too"
    assert settled["result"] == "abandoned"
    assert "left before upstream answered" in settled["reason"]
    budget = next(b for b in gateway.call("GET", "/budgets").json() if b["period"] == "daily")
    assert budget["reserved_usd"] == 0, "the hold went back long before upstream's 30 s"


def test_a_stream_whose_reservation_an_operator_settles_is_stopped_and_leaks_nothing(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> None:
    """A call held past its hold (a one-second hold here; a stalled upstream in life) looks
    unsettled, and an operator settles it while its answer still streams: the next part
    cannot be held against the budget, so the answer stops with a clear error, and the
    budget keeps nothing reserved for it."""
    tether = start_tether(
        tmp_path / "data",
        database_url,
        anthropic_base_url=upstream.url,
        budget_lease_percent=0,
        budget_hold_seconds=1,
    )
    try:
        tether.create_project("p", upstream.fake.api_key)
        key = tether.create_agent("writer", "p")
        daily = tether.call(  # under the worst case: covered as it streams
            "PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 0.15}
        ).json()
        upstream.fake.default = FakeReply(
            output_tokens=20_000, chunks=3, chunk_delay=3.0, fill_text=True
        )
        settled: list[dict] = []

        def operator() -> None:
            """Lists the unsettled reservation and settles it; a part that streamed in
            between renews it (no longer unsettled, 404), so it waits for the next lapse."""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not settled:
                held = tether.call("GET", "/reservations/unsettled").json()
                if held:
                    answer = tether.call(
                        "POST",
                        "/reservations/settle",
                        json={
                            "project": "p",
                            "reservation_id": held[0]["reservation_id"],
                            "usd": 0.01,
                        },
                    )
                    if answer.status_code == 200:
                        settled.extend(answer.json())
                        return
                time.sleep(0.05)

        settling = threading.Thread(target=operator)
        settling.start()
        error = cut_stream(tether, key, "slow").error
        settling.join()
        assert settled, "the operator found the reservation unsettled"
        assert error["code"] == "budget_reservation_settled", error
        assert "settled by an operator" in error["message"]
        completed(tether, "slow")
        (budget,) = [b for b in tether.call("GET", "/budgets").json() if b["id"] == daily["id"]]
        assert budget["reserved_usd"] == 0, budget
        assert budget["spent_usd"] == pytest.approx(0.01), "what the operator settled it at"
    finally:
        tether.stop()
