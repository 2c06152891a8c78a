"""Per-session memory of calls: how often each request repeated in a window, which tool
calls gave which answers, how many calls failed in a row, when the session last moved on.

Held in memory on each replica (bounded, least recently used sessions forgotten): the
guards see the calls a replica serves, which is every call of a session when the load
balancer keeps sessions sticky.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SessionWatch", "SessionWatches", "Trip"]

MAX_SESSIONS = 50_000
MAX_FINGERPRINTS = 512
"""Per session: ~100 bytes each (a short key and a list of a few timestamps), so a replica's
worst case stays in the low gigabytes and a typical one in megabytes."""
MAX_TOOL_USES = 256
"""Tool calls asked for and not yet answered, per session (a turn asks for a handful)."""


@dataclass(frozen=True, slots=True)
class Trip:
    """A guard that fired: the code and reason the refusal carries."""

    code: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _remember(memory: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    memory[key] = value
    memory.move_to_end(key)
    if len(memory) > limit:
        memory.popitem(last=False)


@dataclass(slots=True)
class SessionWatch:
    started_ms: int = 0
    recent: OrderedDict[str, list[int]] = field(default_factory=OrderedDict)
    failures_in_a_row: int = 0
    calls_without_news: int = 0
    last_news_ms: int = 0
    """When the session last did something new (a new tool answer, a turn without tools)."""
    asked: OrderedDict[str, str] = field(default_factory=OrderedDict)
    """Tool calls the model asked for, by tool_use id, until their answer is counted."""
    answered: OrderedDict[str, None] = field(default_factory=OrderedDict)
    """tool_use ids whose answer was counted (a hook and the next request both carry it)."""
    answers: OrderedDict[str, int] = field(default_factory=OrderedDict)
    """How often each (tool call, answer) happened in the session."""
    most_repeated: OrderedDict[str, int] = field(default_factory=OrderedDict)
    """Per tool call, the count of its most repeated answer."""
    decided_tool_uses: OrderedDict[str, None] = field(default_factory=OrderedDict)
    """tool_use ids a PreToolUse hook asked tether about."""
    pending: Trip | None = None
    """A trip found while settling, refused at the session's next call."""
    withheld: tuple[str, Trip] | None = None
    """The request whose answer was withheld (its fingerprint) and why: the agent's retry
    of it is refused before it reaches upstream, since it would be withheld again."""
    alerted: set[str] = field(default_factory=set)

    def occurrences(self, fingerprint: str, at_ms: int, window_ms: int, keep: int) -> int:
        """Occurrences of ``fingerprint`` within the window, this one included."""
        times = self.recent.get(fingerprint)
        if times is None:
            times = self.recent[fingerprint] = []
            if len(self.recent) > MAX_FINGERPRINTS:
                self.recent.popitem(last=False)
        else:
            self.recent.move_to_end(fingerprint)
        times[:] = [t for t in times[-(keep - 1) :] if t > at_ms - window_ms] if keep > 1 else []
        times.append(at_ms)
        return len(times)

    def would_repeat(self, fingerprint: str, at_ms: int, window_ms: int) -> int:
        """Occurrences within the window if this call were made, without recording it."""
        times = self.recent.get(fingerprint, ())
        return 1 + sum(1 for t in times if t > at_ms - window_ms)

    def is_new(self, fingerprint: str) -> bool:
        return fingerprint not in self.recent

    def asked_for(self, tool_use_id: str, tool_call: str) -> None:
        _remember(self.asked, tool_use_id, tool_call, MAX_TOOL_USES)

    def answer(self, tool_use_id: str, tool_call: str | None, answer: str, at_ms: int) -> None:
        """Count a tool call's answer once, whichever front door reported it first.
        ``tool_call`` None: the call as asked for earlier in this session, if seen."""
        if tool_use_id in self.answered:
            return
        asked = self.asked.pop(tool_use_id, None)
        tool_call = asked or tool_call
        if tool_call is None:
            return
        _remember(self.answered, tool_use_id, None, MAX_TOOL_USES)
        key = f"{tool_call}\0{answer}"
        seen = self.answers.get(key, 0) + 1
        if seen == 1:
            self.last_news_ms = at_ms
        _remember(self.answers, key, seen, MAX_FINGERPRINTS)
        if seen > self.most_repeated.get(tool_call, 0):
            _remember(self.most_repeated, tool_call, seen, MAX_FINGERPRINTS)

    def times_answered_alike(self, tool_call: str) -> int:
        """How often this tool call already gave one and the same answer."""
        return self.most_repeated.get(tool_call, 0)

    def hook_decided(self, tool_use_id: str) -> None:
        _remember(self.decided_tool_uses, tool_use_id, None, MAX_TOOL_USES)


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
