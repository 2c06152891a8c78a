"""The tallies (``tether.metrics.tallies``) expose what ``prometheus_client``'s own
counters and histograms would, given the same updates: the library is the oracle."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tether.metrics.instruments import LATENCY_BUCKETS
from tether.metrics.tallies import CounterTally, HistogramTally

LABELS = st.tuples(st.sampled_from(["anthropic", "aws", "mcp"]), st.sampled_from(["200", "429"]))
SECONDS = st.one_of(
    st.sampled_from([0.0, *LATENCY_BUCKETS, 3.0, 1e9]),
    st.floats(min_value=0, max_value=5, allow_nan=False),
)


@settings(max_examples=200)
@given(st.lists(st.tuples(LABELS, SECONDS), max_size=60))
def test_a_histogram_tally_shows_what_a_prometheus_histogram_shows(
    observations: list[tuple[tuple[str, str], float]],
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("t_seconds", "help", ["source", "status"], buckets=LATENCY_BUCKETS,
                          registry=theirs)  # fmt: skip
    tally = HistogramTally("t_seconds", "help", ["source", "status"], LATENCY_BUCKETS, ours)
    for labels, seconds in observations:
        histogram.labels(*labels).observe(seconds)
        tally.observe(labels, seconds)
    assert generate_latest(ours) == generate_latest(theirs)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(LABELS, st.one_of(st.integers(1, 10**6), st.floats(0, 1e3))), max_size=60)
)
def test_a_counter_tally_shows_what_a_prometheus_counter_shows(
    updates: list[tuple[tuple[str, str], float]],
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("t_things", "help", ["source", "status"], registry=theirs)
    tally = CounterTally("t_things", "help", ["source", "status"], ours)
    for labels, amount in updates:
        counter.labels(*labels).inc(amount)
        tally.add(labels, amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_histogram_without_labels_is_shown_before_anything_is_observed() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    Histogram("t_commit_seconds", "help", buckets=LATENCY_BUCKETS, registry=theirs)
    HistogramTally("t_commit_seconds", "help", [], LATENCY_BUCKETS, ours)
    assert generate_latest(ours) == generate_latest(theirs)
