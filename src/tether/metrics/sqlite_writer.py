"""The SQLite writer's group commit, read at scrape time: how many transactions it has
committed and how many pieces of work they carried, so an operator (or
``bench/writer_commits.py``) can see how many commits a call costs and how well
concurrent calls share them."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from tether.store.sqlite_writer import SqliteWriter

__all__ = ["SqliteWriterCounters"]


class SqliteWriterCounters(Collector):
    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[CounterMetricFamily]:
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
        yield from (commits, pieces)
