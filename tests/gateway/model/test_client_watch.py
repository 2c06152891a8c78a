"""One timer watches every call waiting on upstream (``tether.gateway.model.client_watch``):
each client that leaves is given up on within its check interval, whenever it leaves, and
the clients that stay are answered."""

from __future__ import annotations

import concurrent.futures

import httpx
import orjson

from tests.gateway.anthropic.test_stream_accounting import completed
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply
from tether.gateway.model.client_watch import CHECK_SECONDS

UPSTREAM_SECONDS = 4.0
LEAVERS = {"leaves-early": 0.3, "leaves-later": 1.4, "leaves-last": 2.2}
"""Each client's timeout: they leave at different points of the one sweep's cycle."""
STAYERS = ("stays-1", "stays-2")


def _call(tether: RunningTether, key: str, session: str, timeout: float) -> int | str:
    body = orjson.dumps(
        {
            "model": "claude-sonnet-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": session}],
        }
    )
    try:
        answer = httpx.post(
            f"{tether.url}/v1/messages",
            content=body,
            headers={
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
                "X-Tether-Session-Id": session,
            },
            timeout=timeout,
        )
    except httpx.ReadTimeout:
        return "left"
    return answer.status_code


def test_every_client_that_leaves_is_given_up_on_and_those_that_stay_are_answered(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("watched", "p")
    upstream.fake.default = FakeReply(delay=UPSTREAM_SECONDS)
    timeouts = {**LEAVERS, **{session: 30.0 for session in STAYERS}}
    with concurrent.futures.ThreadPoolExecutor(len(timeouts)) as pool:
        calls = {s: pool.submit(_call, gateway, key, s, t) for s, t in timeouts.items()}
        answers = {session: call.result() for session, call in calls.items()}
    assert answers == {**dict.fromkeys(LEAVERS, "left"), **dict.fromkeys(STAYERS, 200)}
    for session, left_after in LEAVERS.items():
        event = completed(gateway, session)
        assert event["result"] == "abandoned", event
        latency = event["attributes"]["latency_ms"] / 1000
        assert (
            left_after <= latency < min(left_after + 2 * CHECK_SECONDS + 0.5, UPSTREAM_SECONDS)
        ), (
            session,
            latency,
        )
    for session in STAYERS:
        assert completed(gateway, session)["result"] == "ok"
