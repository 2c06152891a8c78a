"""The guards' own bookkeeping, alone: the circuit breaker's openings and a session's
memory of tool answers."""

from __future__ import annotations

from tether.guards.breaker import CircuitBreaker
from tether.guards.fingerprints import result_fingerprint, tool_use_fingerprint
from tether.guards.watches import SessionWatch

SECOND = 1000


def test_the_breaker_opens_after_the_threshold_and_doubles_its_cool_down_up_to_the_cap() -> None:
    breaker = CircuitBreaker()
    assert not breaker.failed(0, 2, 60 * SECOND, 300 * SECOND, 0)
    assert breaker.failed(1 * SECOND, 2, 60 * SECOND, 300 * SECOND, 0)
    assert breaker.wait_ms(2 * SECOND) == 59 * SECOND
    assert not breaker.failed(3 * SECOND, 2, 60 * SECOND, 300 * SECOND, 0), "in flight"
    openings = []
    at = 61 * SECOND
    for _ in range(4):
        assert breaker.wait_ms(at) is None, "half-open after the cool-down"
        assert breaker.failed(at, 2, 60 * SECOND, 300 * SECOND, 0), "first failure re-opens"
        waited = breaker.wait_ms(at)
        assert waited is not None
        openings.append(waited // SECOND)
        at += waited
    assert openings == [120, 240, 300, 300]
    breaker.succeeded()
    assert breaker.wait_ms(at) is None and breaker.openings == 0


def test_upstream_retry_after_is_a_floor_never_a_ceiling() -> None:
    short, long = CircuitBreaker(), CircuitBreaker()
    short.failed(0, 1, 60 * SECOND, 600 * SECOND, 1 * SECOND)
    long.failed(0, 1, 60 * SECOND, 600 * SECOND, 90 * SECOND)
    assert short.wait_ms(0) == 60 * SECOND
    assert long.wait_ms(0) == 90 * SECOND


def test_a_tool_answer_counts_once_whichever_door_reports_it_first() -> None:
    deploy, as_the_hook_saw_it = tool_use_fingerprint("deploy", {}), tool_use_fingerprint("x", {})
    fail, ok_now = result_fingerprint("fail"), result_fingerprint("ok now")
    watch = SessionWatch()
    watch.asked_for("t1", deploy)
    watch.answer("t1", as_the_hook_saw_it, fail, 10)
    watch.answer("t1", None, fail, 11)
    assert watch.times_answered_alike(deploy) == 1
    assert watch.times_answered_alike(as_the_hook_saw_it) == 0
    watch.asked_for("t2", deploy)
    watch.answer("t2", None, fail, 12)
    watch.asked_for("t3", deploy)
    watch.answer("t3", None, ok_now, 13)
    assert watch.times_answered_alike(deploy) == 2
    assert watch.last_news_ms == 13, "a new answer is progress"


def test_an_answer_to_a_call_never_seen_is_not_counted_without_its_call() -> None:
    watch = SessionWatch()
    watch.answer("unknown", None, result_fingerprint("x"), 5)
    assert not watch.tools_seen().answers and watch.last_news_ms == 0
