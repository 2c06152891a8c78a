"""The SQLite writer's group commit, read at scrape time: how many transactions it has
committed and how many pieces of work they carried, so an operator can see how many
commits a call costs and how well concurrent calls share them; and how long the writer's
thread took to start on work handed to it (``bench/tails.py`` reads it), and how long
the WAL syncs of commits made on the event loop took."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from tether.metrics.tallies import HistogramTally
from tether.store.sqlite_writer import HANDOFF_BUCKETS, SqliteWriter
from tether.store.wal_sync import WAL_SYNC_BUCKETS

__all__ = ["SqliteWriterCounters"]


class SqliteWriterCounters(Collector):
    """Registers itself and the wake-up histogram in ``registry``. The histogram's one
    series is written by the writer's thread alone (``SqliteWriter.on_handoff``); a
    scrape reads it as it stands."""

    def __init__(self, writer: SqliteWriter, registry: CollectorRegistry) -> None:
        self._writer = writer
        handoffs = HistogramTally(
            "tether_sqlite_writer_handoff_seconds",
            "From work handed to the idle SQLite writer thread to the thread running it: "
            "waking it and its wait for the interpreter lock held by a busy event loop",
            (),
            HANDOFF_BUCKETS,
            registry,
        )
        writer.on_handoff = lambda seconds: handoffs.observe((), seconds)
        loop_commits = HistogramTally(
            "tether_sqlite_writer_loop_commit_seconds",
            "How long each transaction made on the event loop's thread held the loop, from "
            "its BEGIN to its COMMIT (its WAL sync is the helper process's, not the loop's)",
            (),
            HANDOFF_BUCKETS,
            registry,
        )
        writer.on_loop_commit = lambda seconds: loop_commits.observe((), seconds)
        wal_syncs = HistogramTally(
            "tether_sqlite_wal_sync_seconds",
            "How long each sync of a commit made on the event loop took the helper process, "
            "from asking to its answer: the disk's fdatasync and the helper's wake-up",
            (),
            WAL_SYNC_BUCKETS,
            registry,
        )
        writer.on_wal_sync = lambda seconds: wal_syncs.observe((), seconds)
        registry.register(self)

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
        on_loop = CounterMetricFamily(
            "tether_sqlite_writer_loop_commits",
            "Of those transactions, the ones committed on the event loop's thread (a "
            "decision's brief writes), their WAL synced by the helper process",
        )
        on_loop.add_metric([], self._writer.loop_commits)
        yield from (commits, pieces, on_loop)
