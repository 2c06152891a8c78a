"""Pings on relayed streams (Claude Code's gateway contract, #23): upstream's reach the
client unchanged, and a stream quiet at tether's end — a tool call held until it is
complete and judged — gets tether's own, so Claude Code (which drops a stream silent for
300 s) keeps it; here with a short interval."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tests.support.streams import MODEL
from tether.fakes.anthropic import FakeReply

UPSTREAMS_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
TETHERS_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
SLOW_TOOL = FakeReply(
    kind="tool_use",
    tool_name="Write",
    tool_input={"file_path": "/tmp/notes.txt", "content": "a long file " * 20},
    chunks=4,
    chunk_delay=0.6,
)
"""A tool call whose input takes 2.4 s to arrive: tether holds all of it until judged."""


def stream(tether: RunningTether, key: str) -> bytes:
    """The raw bytes of one streamed answer, as the client receives them."""
    with httpx.stream(
        "POST",
        f"{tether.url}/v1/messages",
        json={
            "model": MODEL,
            "max_tokens": 500,
            "stream": True,
            "messages": [{"role": "user", "content": "write the notes"}],
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as answer:
        assert answer.status_code == 200, answer.read()
        return b"".join(answer.iter_raw())


@pytest.mark.parametrize("kind", ["text", "tool_use"])
def test_upstreams_pings_reach_the_client_unchanged(
    gateway: RunningTether, upstream: RunningFake, kind: str
) -> None:
    gateway.set_guards("p", breaker_failures=None)
    upstream.fake.enqueue(FakeReply(kind=kind))
    received = stream(gateway, gateway.create_agent("a", "p"))
    assert received.count(UPSTREAMS_PING) == 1
    if kind == "tool_use":
        # Held with the tool call, the ping would wait for it; it goes on ahead instead.
        assert received.index(UPSTREAMS_PING) < received.index(b"event: content_block_start")


@pytest.mark.parametrize(
    "gateway", [{"stream_keepalive_seconds": 0.2}], indirect=True, ids=["pings-every-0.2s"]
)
def test_a_held_tool_call_does_not_leave_the_stream_silent(
    gateway: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    key = gateway.create_agent("a", "p")
    upstream.fake.enqueue(SLOW_TOOL)
    received = stream(gateway, key)
    held_from = received.index(b"event: content_block_start")
    assert received[:held_from].count(TETHERS_PING) >= 4, received[:held_from]
    assert received.count(UPSTREAMS_PING) == 1
    assert received.rstrip().endswith(b'{"type":"message_stop"}')
    upstream.fake.enqueue(SLOW_TOOL)
    client = sdk(gateway, key)
    with client.messages.stream(
        model=MODEL, max_tokens=500, messages=[{"role": "user", "content": "write the notes"}]
    ) as streamed:
        message = streamed.get_final_message()
    assert [block.type for block in message.content] == ["tool_use"], "the SDK skips the pings"


@pytest.mark.parametrize(
    "gateway", [{"stream_keepalive_seconds": 0}], indirect=True, ids=["no-pings"]
)
def test_no_pings_of_tethers_own_when_turned_off(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    upstream.fake.enqueue(SLOW_TOOL)
    received = stream(gateway, gateway.create_agent("a", "p"))
    assert TETHERS_PING not in received and received.count(UPSTREAMS_PING) == 1
