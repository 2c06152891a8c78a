"""CPU time the hypervisor gave to other guests while a phase ran (``steal`` in
``/proc/stat``). On a virtual machine whose host is oversubscribed, every process here
stops now and then for milliseconds at a time, whatever it is doing: a latency tail that
is the host's, not the server's. Zero on a machine of one's own (or where the kernel does
not account it)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["StolenCpu", "StolenWindows", "cpu_ticks"]

WINDOW_SECONDS = 0.1
STALL_SHARE = 0.5
"""A window in which the hypervisor took at least this share of one core's time is a
stall: some process here stood still for half the window, whatever the load."""


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, asked for) clock ticks since boot, summed over the cores: asked for is
    every tick not idle (running, in the kernel, or stolen); None without /proc."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if first[0] != "cpu" or len(first) < 9:
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks) - ticks[3] - ticks[4]


@dataclass
class StolenWindows:
    """What was stolen over a phase: in all, and in the worst short windows."""

    share: float = 0.0
    """Of the CPU time asked for over the phase, the share stolen (0.05: 5 %)."""
    windows: int = 0
    stalls: int = 0
    """Windows of ``WINDOW_SECONDS`` in which at least ``STALL_SHARE`` of a core was
    stolen."""
    worst: float = 0.0
    """The most of one core's time stolen in a window (2.0: both cores of two, all of it)."""
    samples: list[float] = field(default_factory=list, repr=False)

    def add(self, other: StolenWindows) -> None:
        """Fold another phase in (for a tally over rounds)."""
        self.samples += other.samples
        self.windows += other.windows
        self.stalls += other.stalls
        self.worst = max(self.worst, other.worst)
        self.share = sum(self.samples) / len(self.samples) if self.samples else 0.0

    def describe(self) -> str:
        if not self.windows:
            return "—"
        return f"{self.share:.0%}, {self.stalls} / {self.windows}"


class StolenCpu:
    """Samples ``/proc/stat`` every ``WINDOW_SECONDS`` on a thread while in a ``with``."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._window = window
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stolen-cpu", daemon=True)
        self._stolen_ticks: list[int] = []
        self._stall_ticks = STALL_SHARE * window * os.sysconf("SC_CLK_TCK")
        self._first: tuple[int, int] | None = None
        self._last: tuple[int, int] | None = None

    def __enter__(self) -> StolenCpu:
        self._first = self._last = cpu_ticks()
        if self._first is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(self._window):
            now = cpu_ticks()
            if now is None or self._last is None:
                return
            self._stolen_ticks.append(now[0] - self._last[0])
            self._last = now

    def result(self) -> StolenWindows:
        last = cpu_ticks()
        if self._first is None or last is None:
            return StolenWindows()
        total = last[1] - self._first[1]
        share = (last[0] - self._first[0]) / total if total > 0 else 0.0
        ticks = list(self._stolen_ticks)
        return StolenWindows(
            share=share,
            windows=len(ticks),
            stalls=sum(t >= self._stall_ticks for t in ticks),
            worst=max(ticks, default=0) / (self._stall_ticks / STALL_SHARE),
            samples=[share],
        )
