"""The SQLite writer's group commit, read at scrape time: how many transactions it has
committed and how many pieces of work they carried, so an operator can see how many
commits a call costs and how well concurrent calls share them; and how long the writer's
thread took to start on work handed to it (``bench/tails.py`` reads it)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tether.store.sqlite_writer import HANDOFF_BUCKETS, SqliteWriter

__all__ = ["SqliteWriterCounters"]


class SqliteWriterCounters(Collector):
    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        commits = CounterMetricFamily(
            "tether_sqlite_writer_commits",
            "Transactions the SQLite writer committed (each one an fsync of the WAL)",
        )
        commits.add_metric([], self._writer.commits)
        pieces = CounterMetricFamily(
            "tether_sqlite_writer_pieces",
            "Pieces of work those transactions carried (a decision's events, a session's "
            "row, a budget lease, a flush): pieces over commits is the group-commit batch",
        )
        pieces.add_metric([], self._writer.pieces)
        yield from (commits, pieces, self._handoffs())

    def _handoffs(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "tether_sqlite_writer_handoff_seconds",
            "From work handed to the idle SQLite writer thread to the thread running it: "
            "waking it and its wait for the interpreter lock held by a busy event loop",
        )
        counts = list(accumulate(self._writer.handoffs))
        bounds = [floatToGoString(bound) for bound in HANDOFF_BUCKETS]  # type: ignore[no-untyped-call]
        family.add_metric(
            [], [*zip(bounds, counts, strict=False), ("+Inf", counts[-1])],
            self._writer.handoff_seconds,
        )  # fmt: skip
        return family
