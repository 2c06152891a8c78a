"""A session's guard memory and a project's breaker as bytes, for state shared between
processes. Decoding then encoding an unchanged state gives the same bytes, so a caller can
tell whether a change wrote anything."""

from __future__ import annotations

from typing import Any

import orjson

from tether.guards.breaker import CircuitBreaker
from tether.guards.watches import SessionWatch, ToolCalls, Trip

__all__ = ["decode_breaker", "decode_watch", "encode_breaker", "encode_watch"]


def _trip(trip: Trip | None) -> list[Any] | None:
    return None if trip is None else [trip.code, trip.reason, trip.evidence]


def _untrip(raw: list[Any] | None) -> Trip | None:
    return None if raw is None else Trip(raw[0], raw[1], raw[2])


FORMAT = 2
"""Version 2: fingerprints and ``tool_use`` ids as ints, each map as a flat list of pairs.
A version-1 state (string keys; it began with ``started_ms``) reads as a fresh watch, as
after eviction; it lives under another Redis key anyway (``redis_memory.py``)."""


def _pairs(memory: dict[int, Any]) -> list[Any]:
    return [item for pair in memory.items() for item in pair]


def _unpair(flat: list[Any]) -> dict[int, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def encode_watch(watch: SessionWatch) -> bytes:
    withheld = None if watch.withheld is None else [watch.withheld[0], _trip(watch.withheld[1])]
    tools = watch.tools_seen()
    return orjson.dumps(
        [
            FORMAT,
            watch.started_ms,
            _pairs(watch.recent),
            watch.failures_in_a_row,
            watch.calls_without_news,
            watch.last_news_ms,
            _pairs(tools.asked_before),
            _pairs(tools.asked),
            list(tools.answered),
            _pairs(tools.answers),
            _pairs(tools.most_repeated),
            list(tools.decided_tool_uses),
            _trip(watch.pending),
            withheld,
            sorted(watch.alerted),
        ]
    )


def decode_watch(data: bytes, at_ms: int) -> SessionWatch:
    """``data`` empty (a session not seen yet) or in an older format: a fresh watch
    starting at ``at_ms``."""
    state = orjson.loads(data) if data else None
    if not state or state[0] != FORMAT:
        return SessionWatch(started_ms=at_ms, last_news_ms=at_ms)
    (_, started, recent, failures, without_news, news_ms, asked_before, asked, answered,
     answers, most, decided, pending, withheld, alerted) = state  # fmt: skip
    held = None if withheld is None else (withheld[0], _untrip(withheld[1]))
    tools = ToolCalls(
        asked_before=_unpair(asked_before),
        asked=_unpair(asked),
        answered=dict.fromkeys(answered),
        answers=_unpair(answers),
        most_repeated=_unpair(most),
        decided_tool_uses=dict.fromkeys(decided),
    )
    return SessionWatch(
        started_ms=started,
        recent={key: tuple(times) for key, times in _unpair(recent).items()},
        failures_in_a_row=failures,
        calls_without_news=without_news,
        last_news_ms=news_ms,
        tool_calls=None if tools.is_empty() else tools,
        pending=_untrip(pending),
        withheld=held,  # type: ignore[arg-type]
        alerted=frozenset(alerted),
    )


def encode_breaker(breaker: CircuitBreaker) -> bytes:
    return orjson.dumps([breaker.failures_in_a_row, breaker.open_until_ms, breaker.openings])


def decode_breaker(data: bytes) -> CircuitBreaker:
    if not data:
        return CircuitBreaker()
    failures, open_until, openings = orjson.loads(data)
    return CircuitBreaker(failures, open_until, openings)
