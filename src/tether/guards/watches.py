"""Per-session memory of calls: how often each request repeated in a window, which tool
calls gave which answers, how many calls failed in a row, when the session last moved on.

Held in memory on each replica (bounded, least recently used sessions forgotten): the
guards see the calls a replica serves, which is every call of a session when the load
balancer keeps sessions sticky.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tether.bounded import remember
from tether.guards.fingerprints import answer_key, tool_use_key

__all__ = ["SessionWatch", "SessionWatches", "ToolCalls", "Trip"]

MAX_SESSIONS = 50_000
MAX_REQUESTS = 128
"""Distinct requests a session's repeat guard follows at once; only those made within the
repeat window are kept, so a session has to send more than this many different requests in
that window before one is forgotten (each then occurred once, far under the limit)."""
MAX_TOOL_CALLS = 128
"""Distinct tool calls (tool, input) remembered for the no-progress guard, and distinct
(tool call, answer) pairs for the tool-repeat guard; the least recently seen go first, and a
looping call is seen at every turn."""
MAX_TOOL_USES = 64
"""``tool_use`` ids awaiting or just given an answer, or decided by a hook: a turn asks for
a handful and its answers come back with the next request."""


@dataclass(frozen=True, slots=True)
class Trip:
    """A guard that fired: the code and reason the refusal carries."""

    code: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolCalls:
    """What a session's tool calls left for the tool-repeat and no-progress guards."""

    asked_before: dict[int, int] = field(default_factory=dict)
    """Tool calls the model asked for, with when it last did (the no-progress guard)."""
    asked: dict[int, int] = field(default_factory=dict)
    """Tool calls the model asked for, by tool_use id, until their answer is counted."""
    answered: dict[int, None] = field(default_factory=dict)
    """tool_use ids whose answer was counted (a hook and the next request both carry it)."""
    answers: dict[int, int] = field(default_factory=dict)
    """How often each (tool call, answer) happened in the session."""
    most_repeated: dict[int, int] = field(default_factory=dict)
    """Per tool call, the count of its most repeated answer."""
    decided_tool_uses: dict[int, None] = field(default_factory=dict)
    """tool_use ids a PreToolUse hook asked tether about."""

    def is_empty(self) -> bool:
        return not any(self.held())

    def held(self) -> tuple[dict[int, Any], ...]:
        return (
            self.asked_before, self.asked, self.answered, self.answers, self.most_repeated,
            self.decided_tool_uses,
        )  # fmt: skip


_NO_TOOL_CALLS = ToolCalls()
"""Read, never written: what a session whose model asked for no tool has seen of them."""


@dataclass(slots=True)
class SessionWatch:
    """Fingerprints, answers and ``tool_use`` ids are 60-bit ints (``fingerprints.py``);
    every collection is capped and the time-bound ones pruned, so a watch stays within a
    few kilobytes however long its session runs."""

    started_ms: int = 0
    recent: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Per request fingerprint, its times within the repeat window (least recent first)."""
    failures_in_a_row: int = 0
    calls_without_news: int = 0
    last_news_ms: int = 0
    """When the session last did something new (a new tool answer, a turn without tools)."""
    tool_calls: ToolCalls | None = None
    """Made at the session's first tool call: a session that asks for none (an SDK
    conversation, often) holds six empty dicts fewer (384 bytes)."""
    pending: Trip | None = None
    """A trip found while settling, refused at the session's next call."""
    withheld: tuple[int, Trip] | None = None
    """The request whose answer was withheld (its fingerprint) and why: the agent's retry
    of it is refused before it reaches upstream, since it would be withheld again."""
    alerted: frozenset[str] = frozenset()
    """Trips already alerted on; replaced, never changed in place: most sessions trip
    none, and they all share the one empty frozenset (an empty set is 216 bytes each)."""

    def occurrences(self, fingerprint: int, at_ms: int, window_ms: int, keep: int) -> int:
        """Occurrences of ``fingerprint`` within the window, this one included; requests
        not seen within the window are forgotten, and at most ``keep`` times kept each."""
        since = at_ms - window_ms
        kept = self.recent.pop(fingerprint, ())[-(keep - 1) :] if keep > 1 else ()
        times = (*(t for t in kept if t > since), at_ms)
        _forget_before(self.recent, since, lambda times: times[-1])
        remember(self.recent, fingerprint, times, MAX_REQUESTS)
        return len(times)

    def would_repeat(self, fingerprint: int, at_ms: int, window_ms: int) -> int:
        """Occurrences within the window if this call were made, without recording it."""
        times = self.recent.get(fingerprint, ())
        return 1 + sum(1 for t in times if t > at_ms - window_ms)

    def tools_seen(self) -> ToolCalls:
        """The session's tool calls, to read (empty if it made none)."""
        return self.tool_calls or _NO_TOOL_CALLS

    def _tools(self) -> ToolCalls:
        """The session's tool calls, to change (made at the first)."""
        if self.tool_calls is None:
            self.tool_calls = ToolCalls()
        return self.tool_calls

    def asked_anew(self, tool_call: int, at_ms: int, window_ms: int) -> bool:
        """Record that the model asked for ``tool_call``; whether it had not within the
        window (the longest of the guards' windows: older calls are forgotten)."""
        since = at_ms - window_ms
        asked_before = self._tools().asked_before
        last = asked_before.get(tool_call)
        _forget_before(asked_before, since, lambda last: last)
        remember(asked_before, tool_call, at_ms, MAX_TOOL_CALLS)
        return last is None or last <= since

    def asked_for(self, tool_use_id: str, tool_call: int) -> None:
        remember(self._tools().asked, tool_use_key(tool_use_id), tool_call, MAX_TOOL_USES)

    def answer(self, tool_use_id: str, tool_call: int | None, answer: int, at_ms: int) -> None:
        """Count a tool call's answer once, whichever front door reported it first.
        ``tool_call`` None: the call as asked for earlier in this session, if seen."""
        key = tool_use_key(tool_use_id)
        if key in self.tools_seen().answered:
            return
        asked = self.tool_calls.asked.pop(key, None) if self.tool_calls is not None else None
        tool_call = tool_call if asked is None else asked
        if tool_call is None:
            return
        tools = self._tools()
        remember(tools.answered, key, None, MAX_TOOL_USES)
        pair = answer_key(tool_call, answer)
        seen = tools.answers.get(pair, 0) + 1
        if seen == 1:
            self.last_news_ms = at_ms
        remember(tools.answers, pair, seen, MAX_TOOL_CALLS)
        if seen > tools.most_repeated.get(tool_call, 0):
            remember(tools.most_repeated, tool_call, seen, MAX_TOOL_CALLS)

    def times_answered_alike(self, tool_call: int) -> int:
        """How often this tool call already gave one and the same answer."""
        return self.tools_seen().most_repeated.get(tool_call, 0)

    def hook_decided(self, tool_use_id: str) -> None:
        remember(self._tools().decided_tool_uses, tool_use_key(tool_use_id), None, MAX_TOOL_USES)

    def was_decided(self, tool_use_id: str) -> bool:
        return tool_use_key(tool_use_id) in self.tools_seen().decided_tool_uses

    def entries(self) -> int:
        """Everything this watch holds, counted in keys and timestamps."""
        held = self.tools_seen().held()
        return sum(len(times) for times in self.recent.values()) + sum(len(h) for h in held)


def _forget_before(memory: dict[int, Any], since: int, last_seen: Callable[[Any], int]) -> None:
    """Forget the least recently seen entries last seen at or before ``since``: the dict
    is in order of last use, so this stops at the first one seen later."""
    while memory:
        key = next(iter(memory))
        if last_seen(memory[key]) > since:
            return
        del memory[key]


class SessionWatches:
    """At most ``kept`` sessions' watches, least recently used forgotten: a forgotten
    session that comes back starts with a fresh watch (its kill, pause and spend are in
    the store, not here)."""

    def __init__(self, kept: int = MAX_SESSIONS) -> None:
        self._kept = kept
        self._watches: OrderedDict[str, SessionWatch] = OrderedDict()

    def __len__(self) -> int:
        return len(self._watches)

    def get(self, session_id: str) -> SessionWatch | None:
        """The session's watch if remembered, without touching its recency."""
        return self._watches.get(session_id)

    def of(self, session_id: str, at_ms: int = 0) -> SessionWatch:
        watch = self._watches.get(session_id)
        if watch is None:
            watch = self._watches[session_id] = SessionWatch(started_ms=at_ms, last_news_ms=at_ms)
            if len(self._watches) > self._kept:
                self._watches.popitem(last=False)
        else:
            self._watches.move_to_end(session_id)
        return watch
