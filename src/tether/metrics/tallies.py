"""Counters and histograms counted on every call, kept as plain numbers and turned into
metric families only when scraped.

A model call made seven updates through ``prometheus_client``'s labelled children (a lock
each, a bucket walk a histogram, a child looked up a label set): 9.8 µs of the event loop;
5.3 µs with these (``bench/metrics_bench.py``). They count in a dictionary entry an
update, with no lock: each series is written by one thread (the event loop's; the SQLite
writer's wake-ups by the writer's own), and a scrape shows
the same series: same names, labels, buckets and values (``tests/metrics/test_tallies.py``
holds them to the library's own).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["CounterTally", "HistogramTally"]


class _Family(Collector):
    """A family's name, help and label names. It describes nothing, so registering it
    checks no names (as the other collectors of ``tether.metrics``)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class CounterTally(_Family):
    """A counter family: ``add(labels, amount)``; series appear once counted."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def add(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, value in list(self._values.items()):
            family.add_metric(list(labels), value)
        yield family


class HistogramTally(_Family):
    """A histogram family: ``observe(labels, value)`` counts the value in the first bucket
    whose upper bound holds it (``le``, as Prometheus reads buckets). Without label names
    its one series is shown from the start, as ``prometheus_client`` shows it."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._bounds = sorted(float(bound) for bound in buckets if bound != math.inf)
        self._shown_bounds: list[str] = [
            floatToGoString(bound)  # type: ignore[no-untyped-call]
            for bound in self._bounds
        ]
        self._counts: dict[tuple[str, ...], list[float]] = {}
        """Per series: a count for each bucket, then one for past the last, then the sum."""
        if not self._labelnames:
            self._series(())
        registry.register(self)

    def _series(self, labels: tuple[str, ...]) -> list[float]:
        counts = self._counts[labels] = [0.0] * (len(self._bounds) + 2)
        return counts

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self._counts.get(labels) or self._series(labels)
        counts[bisect_left(self._bounds, value)] += 1
        counts[-1] += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, counts in list(self._counts.items()):
            cumulative, buckets = 0.0, []
            for shown, count in zip(self._shown_bounds, counts, strict=False):
                cumulative += count
                buckets.append((shown, cumulative))
            buckets.append(("+Inf", cumulative + counts[-2]))
            family.add_metric(list(labels), buckets, sum_value=counts[-1])
        yield family
