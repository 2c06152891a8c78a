"""What the process holds, read at scrape time: entries in each bounded in-memory
structure and asyncio tasks (RSS and open file descriptors are the registry's
``process_*`` gauges), so a soak run (``bench/soak.py``) or an operator can see memory
level off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["MemoryGauges"]


class MemoryGauges(Collector):
    def __init__(self, sizes: Callable[[], dict[str, int]]) -> None:
        self._sizes = sizes

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = GaugeMetricFamily(
            "tether_in_memory_entries",
            "Entries held in each bounded in-memory structure (least recently used forgotten)",
            labels=["structure"],
        )
        for structure, count in sorted(self._sizes().items()):
            entries.add_metric([structure], count)
        tasks = GaugeMetricFamily("tether_asyncio_tasks", "asyncio tasks alive in this process")
        try:
            tasks.add_metric([], len(asyncio.all_tasks()))
        except RuntimeError:
            tasks.add_metric([], 0)
        yield from (entries, tasks)
