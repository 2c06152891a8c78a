"""A session's guard memory filled far past its caps: it stays bounded, forgets what no
guard looks at any more, and every guard still trips where it should."""

from __future__ import annotations

from tether.guards.codec import decode_watch, encode_watch
from tether.guards.fingerprints import (
    request_fingerprint,
    result_fingerprint,
    tool_use_fingerprint,
)
from tether.guards.watches import MAX_REQUESTS, MAX_TOOL_CALLS, MAX_TOOL_USES, SessionWatch

WINDOW_MS = 300_000
LIMIT = 20
MOST_ENTRIES = MAX_REQUESTS * (LIMIT + 1) + 3 * MAX_TOOL_CALLS + 3 * MAX_TOOL_USES
"""Keys and timestamps: each request keeps at most ``LIMIT + 1`` times."""


def _fill(watch: SessionWatch, calls: int, at: int) -> int:
    """``calls`` different requests and tool calls, each asked for and answered."""
    for n in range(calls):
        at += 10
        watch.occurrences(request_fingerprint(b"request %d" % n), at, WINDOW_MS, LIMIT + 1)
        call = tool_use_fingerprint("Bash", {"command": f"ls {n}"})
        watch.asked_anew(call, at, WINDOW_MS)
        watch.asked_for(f"toolu_{n}", call)
        watch.answer(f"toolu_{n}", call, result_fingerprint(n), at)
        watch.hook_decided(f"toolu_{n}")
    return at


def test_a_watch_filled_far_past_its_caps_holds_at_most_its_caps() -> None:
    watch = SessionWatch()
    _fill(watch, 10_000, 0)
    assert len(watch.recent) == MAX_REQUESTS
    tools = watch.tools_seen()
    assert len(tools.asked_before) == len(tools.answers) == MAX_TOOL_CALLS
    assert len(tools.most_repeated) == MAX_TOOL_CALLS
    assert len(tools.answered) == len(tools.decided_tool_uses) == MAX_TOOL_USES
    assert watch.entries() <= MOST_ENTRIES
    assert len(encode_watch(watch)) < 40_000


def test_a_retry_storm_still_trips_after_thousands_of_other_calls() -> None:
    watch = SessionWatch()
    at = _fill(watch, 5_000, 0)
    storm = request_fingerprint(b"the same request")
    for n in range(1, LIMIT + 1):
        at += 10
        assert watch.would_repeat(storm, at, WINDOW_MS) == n
        watch.occurrences(storm, at, WINDOW_MS, LIMIT + 1)
        at = _fill(watch, 50, at)
    assert watch.would_repeat(storm, at, WINDOW_MS) == LIMIT + 1, "the 21st trips"
    assert len(watch.recent[storm]) <= LIMIT + 1


def test_requests_older_than_the_window_are_forgotten_and_count_afresh() -> None:
    watch = SessionWatch()
    at = _fill(watch, 100, 0)
    first = request_fingerprint(b"request 0")
    assert first in watch.recent
    later = at + WINDOW_MS + 1
    watch.occurrences(request_fingerprint(b"after a pause"), later, WINDOW_MS, LIMIT + 1)
    assert list(watch.recent) == [request_fingerprint(b"after a pause")]
    assert watch.would_repeat(first, later, WINDOW_MS) == 1


def test_a_tool_loop_is_still_withheld_among_thousands_of_other_tool_calls() -> None:
    """The loop's call is seen at every turn, so the least recently used caps keep it as
    long as fewer than ``MAX_TOOL_CALLS`` other calls come between two of its turns."""
    watch = SessionWatch()
    loop = tool_use_fingerprint("Bash", {"command": "make deploy"})
    failed = result_fingerprint(["permission denied", True])
    at = 0
    for n in range(5):
        at = _fill(watch, MAX_TOOL_CALLS - 1, at)
        watch.asked_for(f"toolu_loop_{n}", loop)
        watch.answer(f"toolu_loop_{n}", None, failed, at)
    assert watch.times_answered_alike(loop) == 5, "tool_repeat_limit 5: the next is refused"
    assert watch.entries() <= MOST_ENTRIES


def test_no_progress_sees_a_repeated_tool_call_within_the_window_and_news_after_it() -> None:
    watch = SessionWatch()
    call = tool_use_fingerprint("Read", {"file_path": "/etc/hosts"})
    assert watch.asked_anew(call, 0, WINDOW_MS)
    _fill(watch, MAX_TOOL_CALLS - 1, 0)
    assert not watch.asked_anew(call, 20_000, WINDOW_MS), "asked before, within the window"
    assert watch.asked_anew(call, 20_000 + WINDOW_MS, WINDOW_MS), "forgotten past the window"


def test_a_full_watch_reads_back_from_its_shared_encoding_unchanged() -> None:
    watch = SessionWatch(started_ms=1, last_news_ms=1)
    _fill(watch, 1_000, 0)
    data = encode_watch(watch)
    again = decode_watch(data, 99)
    assert again == watch
    assert encode_watch(again) == data


def test_a_state_in_the_older_encoding_reads_as_a_fresh_watch() -> None:
    older = b'[5,[["body:3:abc",[5]]],0,0,5,[],[],[],[],[],null,null,[]]'
    assert decode_watch(older, 42) == SessionWatch(started_ms=42, last_news_ms=42)
