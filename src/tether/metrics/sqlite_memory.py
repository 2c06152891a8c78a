"""SQLite's own memory, read at scrape time: the part of the server's RSS that is page
caches and prepared statements (no Python object shows it), so a soak run or an operator
can tell SQLite's share of memory from tether's."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tether.store.sqlite_memory import sqlite_memory_used

__all__ = ["SqliteMemoryGauge"]


class SqliteMemoryGauge(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = sqlite_memory_used()
        if used is None:
            return
        gauge = GaugeMetricFamily(
            "tether_sqlite_memory_bytes",
            "Memory SQLite's library holds in this process: every connection's page cache, "
            "prepared statements and schema",
        )
        gauge.add_metric([], used)
        yield gauge
