"""Refusals of unauthenticated requests, sampled per client address: the first in each
window is recorded with how many it stands for, the rest only counted, so a flood of bad
credentials cannot grow the audit chain (which is never pruned) at the flood's rate."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

__all__ = ["MAX_SOURCES", "RefusalWindows"]

MAX_SOURCES = 10_000


@dataclass(slots=True)
class _Window:
    recorded_at: float
    codes: Counter[str] = field(default_factory=Counter)


class RefusalWindows:
    """At most one recorded refusal per address per ``seconds``; ``MAX_SOURCES``
    addresses remembered, least recently refused forgotten."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def due(self, peer: str, code: str) -> dict[str, object] | None:
        """When this refusal is to be recorded, what its event says of the window: how
        many refusals it stands for (``refused``), by code, and from which ``peer``; None
        when it is only counted."""
        now = time.monotonic()
        window = self._windows.get(peer)
        if window is not None and now - window.recorded_at < self.seconds:
            window.codes[code] += 1
            return None
        codes = window.codes if window is not None else Counter()
        codes[code] += 1
        self._windows[peer] = _Window(now)
        self._windows.move_to_end(peer)
        while len(self._windows) > MAX_SOURCES:
            self._windows.popitem(last=False)
        return {"refused": sum(codes.values()), "codes": dict(codes), "peer": peer}

    def sampled(self, count: object, peer: str, without: str) -> str:
        """The reason's words for a sampled refusal."""
        return (
            f"{count} request(s) from {peer} refused without {without} "
            f"(sampled: at most one event per {self.seconds:g} s per address)"
        )
