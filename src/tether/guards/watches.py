"""Per-session memory of recent calls: how often each call repeated, how many failed in a
row, how long since the model asked for anything new.

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


@dataclass(frozen=True, slots=True)
class Trip:
    """A guard that fired: the code and reason the refusal carries."""

    code: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SessionWatch:
    recent: OrderedDict[str, list[int]] = field(default_factory=OrderedDict)
    failures_in_a_row: int = 0
    calls_without_news: int = 0
    pending: Trip | None = None
    """A trip found while settling, refused at the session's next call."""
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


class SessionWatches:
    def __init__(self) -> None:
        self._watches: OrderedDict[str, SessionWatch] = OrderedDict()

    def of(self, session_id: str) -> SessionWatch:
        watch = self._watches.get(session_id)
        if watch is None:
            watch = self._watches[session_id] = SessionWatch()
            if len(self._watches) > MAX_SESSIONS:
                self._watches.popitem(last=False)
        else:
            self._watches.move_to_end(session_id)
        return watch
