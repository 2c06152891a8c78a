"""The hypervisor's share of the CPU (``bench/comparison/stolen.py``), as the benchmarks
report it beside their figures: read from this machine's ``/proc/stat``, folded over
rounds, and turned into a warning when the host was not quiet."""

from __future__ import annotations

import time

from comparison.report import busy_warning, render
from comparison.stolen import STALL_SHARE, StolenCpu, StolenWindows, cpu_ticks

from tests.bench.test_compare_smoke import synthetic_run


def test_ticks_are_read_from_proc_stat() -> None:
    ticks = cpu_ticks()
    assert ticks is not None, "Linux /proc/stat is where the benchmarks run"
    stolen, asked = ticks
    assert 0 <= stolen <= asked


def test_a_busy_phase_is_sampled_in_windows() -> None:
    with StolenCpu(window=0.02) as stolen:
        until = time.perf_counter() + 0.3
        while time.perf_counter() < until:
            pass
    result = stolen.result()
    assert result.windows >= 5, "one sample per window while the phase ran"
    assert 0.0 <= result.share <= 1.0
    assert 0 <= result.stalls <= result.windows


def test_rounds_fold_into_one_tally() -> None:
    tally = StolenWindows()
    tally.add(StolenWindows(share=0.1, windows=10, stalls=1, worst=0.6, samples=[0.1]))
    tally.add(StolenWindows(share=0.3, windows=20, stalls=0, worst=0.4, samples=[0.3]))
    assert (tally.windows, tally.stalls, tally.worst) == (30, 1, 0.6)
    assert abs(tally.share - 0.2) < 1e-9
    assert tally.describe() == "20%, 1 / 30"
    assert StolenWindows().describe() == "—"
    assert STALL_SHARE == 0.5


def test_a_host_that_took_the_cpu_is_named_in_the_report() -> None:
    run = synthetic_run()
    run.machine.load_before = "0.10 0.10 0.10"
    run.machine.stolen = 0.02
    assert busy_warning(run) == []
    assert "the hypervisor took 2% of the CPU time asked for" in render(run)
    run.machine.stolen = 0.18
    warning = " ".join(busy_warning(run))
    assert "**The host was not quiet**" in warning and "18%" in warning
    run.machine.stolen = None
    assert "hypervisor" not in render(run)
