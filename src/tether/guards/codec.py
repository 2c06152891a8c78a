"""A session's guard memory and a project's breaker as bytes, for state shared between
processes. Decoding then encoding an unchanged state gives the same bytes, so a caller can
tell whether a change wrote anything."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from tether.guards.breaker import CircuitBreaker
from tether.guards.watches import SessionWatch, Trip

__all__ = ["decode_breaker", "decode_watch", "encode_breaker", "encode_watch"]


def _trip(trip: Trip | None) -> list[Any] | None:
    return None if trip is None else [trip.code, trip.reason, trip.evidence]


def _untrip(raw: list[Any] | None) -> Trip | None:
    return None if raw is None else Trip(raw[0], raw[1], raw[2])


def encode_watch(watch: SessionWatch) -> bytes:
    withheld = None if watch.withheld is None else [watch.withheld[0], _trip(watch.withheld[1])]
    return orjson.dumps(
        [
            watch.started_ms,
            watch.recent,
            watch.failures_in_a_row,
            watch.calls_without_news,
            watch.last_news_ms,
            watch.asked,
            watch.answered,
            watch.answers,
            watch.most_repeated,
            watch.decided_tool_uses,
            _trip(watch.pending),
            withheld,
            sorted(watch.alerted),
        ]
    )


def decode_watch(data: bytes, at_ms: int) -> SessionWatch:
    """``data`` empty: a session not seen yet, starting at ``at_ms``."""
    if not data:
        return SessionWatch(started_ms=at_ms, last_news_ms=at_ms)
    (started, recent, failures, without_news, news_ms, asked, answered, answers, most,
     decided, pending, withheld, alerted) = orjson.loads(data)  # fmt: skip
    held = None if withheld is None else (withheld[0], _untrip(withheld[1]))
    return SessionWatch(
        started_ms=started,
        recent=OrderedDict(recent),
        failures_in_a_row=failures,
        calls_without_news=without_news,
        last_news_ms=news_ms,
        asked=OrderedDict(asked),
        answered=OrderedDict(answered),
        answers=OrderedDict(answers),
        most_repeated=OrderedDict(most),
        decided_tool_uses=OrderedDict(decided),
        pending=_untrip(pending),
        withheld=held,  # type: ignore[arg-type]
        alerted=set(alerted),
    )


def encode_breaker(breaker: CircuitBreaker) -> bytes:
    return orjson.dumps([breaker.failures_in_a_row, breaker.open_until_ms, breaker.openings])


def decode_breaker(data: bytes) -> CircuitBreaker:
    if not data:
        return CircuitBreaker()
    failures, open_until, openings = orjson.loads(data)
    return CircuitBreaker(failures, open_until, openings)
