"""The SSE tap must read any chunking of a real stream the same way."""

from __future__ import annotations

import itertools
import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.gateway.anthropic.stream_tap import StreamTap


def event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


STREAM = "".join(
    [
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "model": "claude-sonnet-5",
                    "usage": {
                        "input_tokens": 120,
                        "output_tokens": 1,
                        "cache_read_input_tokens": 50,
                    },
                },
            },
        ),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        event("ping", {"type": "ping"}),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me look."},
            },
        ),
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
            },
        ),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"comm'},
            },
        ),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": 'and": "ls -la"}'},
            },
        ),
        event("content_block_stop", {"type": "content_block_stop", "index": 1}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 77},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
).encode()


def check(tap: StreamTap) -> None:
    assert tap.completed and tap.model == "claude-sonnet-5"
    assert (tap.usage.input_tokens, tap.usage.output_tokens, tap.usage.cache_read_input_tokens) == (
        120,
        77,
        50,
    )
    assert [(t.id, t.name, t.input) for t in tap.tool_uses] == [
        ("toolu_1", "Bash", {"command": "ls -la"})
    ]


def test_whole_stream() -> None:
    tap = StreamTap()
    tap.feed(STREAM)
    check(tap)


def test_crlf_line_endings() -> None:
    tap = StreamTap()
    tap.feed(STREAM.replace(b"\n", b"\r\n"))
    check(tap)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=30))
def test_any_chunking(cuts: list[int]) -> None:
    tap = StreamTap()
    edges = [0, *sorted(set(cuts)), len(STREAM)]
    for start, end in itertools.pairwise(edges):
        tap.feed(STREAM[start:end])
    check(tap)


def test_an_error_event_is_noted() -> None:
    tap = StreamTap()
    tap.feed(
        event(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ).encode()
    )
    assert tap.error == "overloaded_error: Overloaded" and not tap.completed


def test_an_event_in_many_small_chunks_costs_linear_time() -> None:
    """A long event arriving a few bytes at a time is scanned once, not once per chunk."""

    def cost(size: int) -> float:
        text = "x" * size
        body = event("content_block_delta", {"type": "content_block_delta", "delta": text})
        data = body.encode()
        best = float("inf")
        for _ in range(5):
            tap = StreamTap()
            started = time.process_time()
            passed = [tap.feed(data[i : i + 64]) for i in range(0, len(data), 64)]
            best = min(best, time.process_time() - started)
        assert b"".join(b for segs in passed for b in segs if isinstance(b, bytes)) == data
        return best

    assert cost(512_000) < 24 * cost(64_000)


TOOL_WITH_A_PING = (
    event(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
        },
    )
    + event("ping", {"type": "ping"})
    + event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"command": "ls"}'},
        },
    )
    + event("content_block_stop", {"type": "content_block_stop", "index": 0})
).encode()


def test_a_ping_inside_a_held_tool_call_is_released_ahead_of_it_when_asked() -> None:
    ping = event("ping", {"type": "ping"}).encode()
    held = StreamTap().feed(TOOL_WITH_A_PING)
    assert len(held) == 1 and ping in held[0].raw  # type: ignore[union-attr]
    released = StreamTap(release_pings=True).feed(TOOL_WITH_A_PING)
    assert released[0] == ping
    assert ping not in released[1].raw  # type: ignore[union-attr]
    assert released[1].tool_use.input == {"command": "ls"}  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["message_start", "content_block_start", "content_block_delta", "error"]),
    st.one_of(st.text(min_size=1), st.integers(), st.lists(st.integers(), min_size=1)),
)
def test_a_field_that_is_not_an_object_is_read_as_missing(name: str, odd: object) -> None:
    """An upstream that is not quite the Messages API (a custom base URL) must not break the
    relay: it had raised before the stream's usage was counted, and the call cost nothing."""
    field = {
        "message_start": "message",
        "content_block_start": "content_block",
        "content_block_delta": "delta",
        "error": "error",
    }[name]
    tap = StreamTap()
    tap.feed(event(name, {"type": name, "index": 0, field: odd}).encode())
    tap.feed(STREAM)
    check(tap)
