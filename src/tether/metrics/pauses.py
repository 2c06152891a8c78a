"""Pauses that stall every request at once: the garbage collector's collections and the
event loop held past its turn. A latency tail that shows here is the process's, not one
request's (#29: find what makes the tail)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["PauseWatch"]

PROBE_SECONDS = 0.1
"""How often the loop is asked to wake; how late it wakes is its lag."""

BUCKETS = (0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class PauseWatch:
    """``tether_gc_pause_seconds`` by generation and ``tether_event_loop_lag_seconds``.

    The collector's callback runs wherever a collection starts, possibly inside a metric's
    lock, so it only notes plain numbers; the probe on the loop hands them to the
    histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gc_pause = Histogram(
            "tether_gc_pause_seconds",
            "Garbage collections of the server process, by generation",
            ["generation"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "tether_event_loop_lag_seconds",
            f"How late the event loop woke for a {PROBE_SECONDS:g} s timer",
            buckets=BUCKETS,
            registry=registry,
        )
        self._collecting_since = 0.0
        self._pauses: list[tuple[int, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._probe(), name="pause-watch")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._publish()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._collecting_since = time.perf_counter()
        elif self._collecting_since:
            self._pauses.append((info["generation"], time.perf_counter() - self._collecting_since))
            self._collecting_since = 0.0

    def _publish(self) -> None:
        pauses, self._pauses = self._pauses, []
        for generation, seconds in pauses:
            self.gc_pause.labels(str(generation)).observe(seconds)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PROBE_SECONDS
            await asyncio.sleep(PROBE_SECONDS)
            self.loop_lag.observe(max(0.0, loop.time() - due))
            self._publish()
