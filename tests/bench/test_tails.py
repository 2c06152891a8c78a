"""The tail benchmark's instruments (``bench/tails.py``), quickly: the disk probe, and the
histograms it reads from a running tether's ``/metrics``. The benchmark itself is not run
here."""

from __future__ import annotations

from pathlib import Path

import pytest
from comparison.document import write_marked
from comparison.load import Phase
from comparison.stolen import StolenWindows
from tails import (
    Tally,
    buckets,
    count_above,
    disk_probe,
    loop_commits,
    render_phases,
    tally_histograms,
)

from tests.support.fake_upstream import RunningFake
from tests.support.model_calls import model_call
from tests.support.server import RunningTether


def test_the_disk_probe_fsyncs_at_its_rate_and_leaves_nothing(tmp_path: Path) -> None:
    latencies = disk_probe(tmp_path, rate=50, seconds=0.2)
    assert len(latencies) == 10
    assert all(ms > 0 for ms in latencies)
    assert list(tmp_path.iterdir()) == []


def test_count_above_reads_cumulative_buckets() -> None:
    histogram = [(0.005, 7.0), (0.01, 9.0), (0.025, 9.0), (float("inf"), 12.0)]
    assert count_above(histogram, 10) == 3.0
    assert count_above(histogram, 25) == 3.0
    assert count_above(histogram, 5) == 5.0


@pytest.mark.parametrize("gateway", [{"sqlite_commit_on_loop": False}], indirect=True)
def test_a_running_tethers_commits_are_counted_over_a_phase(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    """With commits on the writer thread (``bench/tails.py``'s ``tether-thread``), each
    decision's commit wakes it: the hand-offs are counted too."""
    key = gateway.create_agent("bench", "p")
    before = buckets(gateway.url, gateway.admin_token)
    assert set(before) == {
        "decisions", "commits", "hand-offs", "loop commits", "gc pauses", "loop lag"
    }  # fmt: skip
    for n in range(3):
        answer = model_call(gateway, key, f"tails-{n}")
        assert answer.status_code == 200, answer.text
    tally = Tally()
    tally_histograms(tally, before, buckets(gateway.url, gateway.admin_token))
    assert tally.events["decisions"] == 3
    assert tally.events["commits"] >= 3, "each decision's events commit before it is answered"
    assert set(tally.slow["commits"]) == set(tally.slow["decisions"]) == {2.5, 10}
    assert set(tally.slow["loop lag"]) == {10}
    assert tally.events["hand-offs"] >= 1, "the decisions woke the idle writer thread"
    assert tally.events["loop commits"] == 0 and loop_commits(tally) == "—"


def test_commits_on_the_loop_are_counted_with_how_long_they_held_it(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("bench", "p")
    before = buckets(gateway.url, gateway.admin_token)
    for n in range(6):
        assert model_call(gateway, key, f"loop-{n}").status_code == 200
    tally = Tally(requests=6)
    tally_histograms(tally, before, buckets(gateway.url, gateway.admin_token))
    # The first commit after each checkpoint (two a second) is the writer thread's.
    assert tally.events["loop commits"] >= 3, "the decisions' events commit on the loop"
    assert set(tally.slow["loop commits"]) == {1, 5}
    made, _, slow = loop_commits(tally).partition("; ")
    assert float(made) >= 500 and len(slow.split(" / ")) == 2


def test_the_section_is_replaced_between_its_markers_and_the_rest_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nkept above\n")
    write_marked(doc, "first", "<!-- B -->", "<!-- E -->")
    doc.write_text(doc.read_text() + "\nkept below\n")
    write_marked(doc, "second", "<!-- B -->", "<!-- E -->")
    text = doc.read_text()
    assert "second" in text and "first" not in text
    assert text.index("kept above") < text.index("second") < text.index("kept below")


def test_each_phase_is_listed_with_what_the_host_took_during_it() -> None:
    quiet = Phase("open", False, rate=300, latencies_ms=[2.0] * 99 + [6.0])
    noisy = Phase("open", False, rate=300, latencies_ms=[2.0] * 90 + [30.0] * 10)
    lines = render_phases(
        [
            (300, 1, "tether-full", noisy, StolenWindows(share=0.22)),
            (300, 0, "tether-full", quiet, StolenWindows(share=0.01)),
        ],
        {"tether-full": "tether"},
    )
    rows = [line for line in lines if line.startswith("| 300 req/s")]
    assert rows == [
        "| 300 req/s | 1 | tether | 1% | 2.00 / 6.00 | 6.0 |",
        "| 300 req/s | 2 | tether | 22% | 2.00 / 30.00 | 30.0 |",
    ]
