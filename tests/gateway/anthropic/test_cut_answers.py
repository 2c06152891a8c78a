"""A cut answer — upstream broke off, the client gave up, a budget stopped the stream — is
charged by the one rule of ``pricing.cut`` (README, Budgets): what upstream reported as
reported, each unreported part at its worst case. The audit event says so
(``usage_final: false``) and the budget is charged that figure, never past its limit."""

from __future__ import annotations

import time
from collections.abc import Callable

import anthropic
import httpx
import orjson
import pytest

from tests.budgets.test_budgets import budget, listed
from tests.gateway.anthropic.test_stream_accounting import completed
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply
from tether.pricing.cut import UNSEEN_STREAM_TOKENS

MODEL = "claude-sonnet-5"  # $2 input, $10 output, $4 1-hour cache write per million
INPUT, OUTPUT, HIGHEST_INPUT = 2 / 1e6, 10 / 1e6, 4 / 1e6


def _spent(tether: RunningTether, budget_id: str) -> float:
    deadline = time.monotonic() + 10
    while (state := listed(tether, budget_id))["reserved_usd"] != 0:
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return float(state["spent_usd"])


def test_a_stream_upstream_broke_off_is_charged_its_input_and_the_unseen_tail(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    key = gateway.create_agent("a", "p")
    daily = budget(gateway, project="p", period="daily", limit_usd=10)
    upstream.fake.default = FakeReply(
        input_tokens=1000, output_tokens=6000, chunks=6, fill_text=True, break_after_chunks=2
    )
    client = sdk(gateway, key, session="broken")
    with (
        pytest.raises(anthropic.APIError),
        client.messages.stream(
            model=MODEL, max_tokens=8000, messages=[{"role": "user", "content": "go"}]
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    event = completed(gateway, "broken")
    seen = event["attributes"]["usage"]
    assert event["attributes"]["usage_final"] is False
    assert seen["input_tokens"] == 1000, "message_start reported the input"
    assert 2000 <= seen["output_tokens"] <= 3000, "two pieces of ~1,000 tokens were seen"
    expected = 1000 * INPUT + (seen["output_tokens"] + UNSEEN_STREAM_TOKENS) * OUTPUT
    assert event["attributes"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert _spent(gateway, daily["id"]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_call_the_client_gave_up_on_is_charged_its_worst_case(
    gateway: RunningTether, upstream: RunningFake, stream: bool
) -> None:
    key = gateway.create_agent("a", "p")
    daily = budget(gateway, project="p", period="daily", limit_usd=10)
    upstream.fake.default = FakeReply(delay=5)
    body = orjson.dumps(
        {
            "model": MODEL,
            "max_tokens": 6000,
            "stream": stream,
            "messages": [{"role": "user", "content": "go"}],
        }
    )
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.url}/v1/messages",
            content=body,
            headers={
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
                "X-Tether-Session-Id": "gave-up",
            },
            timeout=1,
        )
    event = completed(gateway, "gave-up")
    assert event["result"] == "abandoned" and event["attributes"]["usage_final"] is False
    input_estimate = len(body) // 4 + 1
    output = UNSEEN_STREAM_TOKENS if stream else 6000
    expected = input_estimate * HIGHEST_INPUT + output * OUTPUT
    assert event["attributes"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert _spent(gateway, daily["id"]) == pytest.approx(expected, abs=1e-6)
