"""What makes tether's latency tail (#29): the same open-loop load, in one run, against the
upstream directly, tether as shipped (SQLite ``synchronous=FULL``: each decision's commit
fsyncs the WAL before the call is forwarded; made on the event loop's thread, the WAL
synced by a helper process), the same with every commit on the writer thread
(``TETHER_SQLITE_COMMIT_ON_LOOP=0``), tether with ``synchronous=NORMAL`` (no fsync on the
request path) and tether on PostgreSQL (each decision's commit a round trip
to another process, which flushes its WAL), beside the disk itself (a 4 KiB append and
fsync at the same rate, in the data directory). For each tether, its own histograms over
the phase (``/metrics``): decisions, the audit commits they wait for, garbage-collector
pauses and event-loop lag, so a tail that is the disk's, the database's, the collector's
or the loop's shows as such.

    uv run python bench/tails.py                      # 30 and 300 req/s, 3 rounds of 15 s
    uv run python bench/tails.py --rates 300 --rounds 5 --stream
    uv run python bench/tails.py --skip tether-pg     # without PostgreSQL
    uv run python bench/tails.py --out docs/benchmarks.md   # also write the section

Rounds interleave the servers, so a machine whose disk or CPU drifts affects each alike.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from compare import run_async
from comparison.document import write_marked
from comparison.load import Phase, open_loop
from comparison.processes import wait_idle
from comparison.results import load_average
from comparison.stolen import STALL_SHARE, WINDOW_SECONDS, StolenCpu, StolenWindows
from comparison.targets import (
    ADMIN_TOKEN,
    Lab,
    Target,
    start_tether,
    start_tether_postgres,
    start_upstream,
)

BEGIN = "<!-- BEGIN bench/tails.py: generated, re-run the command to update -->"
END = "<!-- END bench/tails.py -->"
HISTOGRAMS = {
    "decisions": "tether_decision_seconds",
    "commits": "tether_audit_commit_seconds",
    "hand-offs": "tether_sqlite_writer_handoff_seconds",
    "loop commits": "tether_sqlite_writer_loop_commit_seconds",
    "gc pauses": "tether_gc_pause_seconds",
    "loop lag": "tether_event_loop_lag_seconds",
}
SLOW_MS = {
    "decisions": (2.5, 10),
    "commits": (2.5, 10),
    "hand-offs": (0.5, 2),
    "loop commits": (1, 5),
    "gc pauses": (10,),
    "loop lag": (10,),
}
"""The thresholds each histogram is read at (bounds of its buckets): how many decisions
(commits, pauses, lags) took longer. At 300 req/s a P99 over 3 ms is made of waits of a
few milliseconds, not of the rare long stall. *Hand-offs* are the SQLite writer thread's
wake-ups: how long it took to start on a commit handed to it, most of it the wait for the
interpreter lock a busy event loop holds. *Loop commits*: how long each transaction made
on the event loop's thread held it."""
PROBE_BYTES = b"x" * 4096
SQLITE_VARIANTS = {
    "tether-thread": {"TETHER_SQLITE_COMMIT_ON_LOOP": "0"},
    "tether-normal": {"TETHER_SQLITE_SYNCHRONOUS": "NORMAL"},
}
"""The shipped SQLite tether's neighbours in the run, and the settings that make each."""


@dataclass
class Tally:
    """One server at one rate, over every round."""

    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    slow: dict[str, dict[int, float]] = field(default_factory=dict)
    """Histogram name → threshold (ms) → events above it."""
    events: dict[str, float] = field(default_factory=dict)
    """Histogram name → events observed."""
    stolen: StolenWindows = field(default_factory=StolenWindows)

    def add_phase(self, phase: Phase) -> None:
        self.latencies_ms += phase.latencies_ms
        self.requests += phase.ok

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100 * len(data)))] if data else float("nan")


def disk_probe(directory: Path, rate: int, seconds: float) -> list[float]:
    """fsync latencies (ms) of 4 KiB appends at ``rate`` a second: what one durable commit
    costs on this disk, whatever writes it."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    latencies: list[float] = []
    try:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            os.write(fd, PROBE_BYTES)
            began = time.perf_counter()
            os.fsync(fd)
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return latencies


def buckets(base_url: str, token: str = ADMIN_TOKEN) -> dict[str, list[tuple[float, float]]]:
    """Each histogram's cumulative buckets (upper bound in s, count), labels summed."""
    text = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).text
    found: dict[str, dict[float, float]] = {}
    for name, metric in HISTOGRAMS.items():
        pattern = re.compile(rf'^{metric}_bucket{{.*?le="([^"]+)".*?}} (\S+)$', re.M)
        per_bound = found.setdefault(name, {})
        for bound, count in pattern.findall(text):
            le = float("inf") if bound == "+Inf" else float(bound)
            per_bound[le] = per_bound.get(le, 0.0) + float(count)
    return {name: sorted(per_bound.items()) for name, per_bound in found.items()}


def count_above(histogram: list[tuple[float, float]], ms: float) -> float:
    """Events above ``ms`` from cumulative buckets; ``ms`` must be one of their bounds."""
    total = histogram[-1][1] if histogram else 0.0
    return total - next((n for le, n in histogram if abs(le * 1000 - ms) < 1e-9), total)


def tally_histograms(
    tally: Tally, before: dict[str, list[tuple[float, float]]], after: dict[str, list]
) -> None:
    for name in HISTOGRAMS:
        delta = [
            (le, count - dict(before.get(name, [])).get(le, 0.0))
            for le, count in after.get(name, [])
        ]
        slow = tally.slow.setdefault(name, {})
        for ms in SLOW_MS[name]:
            slow[ms] = slow.get(ms, 0.0) + count_above(delta, ms)
        tally.events[name] = tally.events.get(name, 0.0) + (delta[-1][1] if delta else 0.0)


def warm_up(target: Target, rate: int, stream: bool, tag: str) -> None:
    """A second of the phase's load in the phase's session, unmeasured and not in the
    histograms read after it: the session's start (its row, its first lease) and the
    connections' are not the tail at a steady rate."""
    run_async(open_loop(target.endpoint, stream, rate, 1.0, tag, target.probe))
    wait_idle(target.pids())


def run_phase(
    target: Target, rate: int, seconds: float, stream: bool, tag: str
) -> tuple[Phase, StolenWindows]:
    with StolenCpu() as stolen:
        phase = run_async(open_loop(target.endpoint, stream, rate, seconds, tag, target.probe))
    wait_idle(target.pids())
    return phase, stolen.result()


def per_thousand(count: float, requests: int) -> str:
    return f"{count / requests * 1000:.1f}" if requests else "—"


def handoff_shares(tally: Tally) -> str:
    """The share of the writer's wake-ups slower than each threshold; "—" without a
    SQLite writer (PostgreSQL)."""
    woken = tally.events.get("hand-offs", 0.0)
    if not woken:
        return "—"
    return " / ".join(f"{tally.slow['hand-offs'][ms] / woken:.0%}" for ms in SLOW_MS["hand-offs"])


def loop_commits(tally: Tally) -> str:
    """Commits made on the loop per 1,000 requests, and how many held it over each
    threshold; "—" where none were (PostgreSQL, commits on the thread)."""
    made = tally.events.get("loop commits", 0.0)
    if not made:
        return "—"
    slow = " / ".join(
        per_thousand(tally.slow["loop commits"][ms], tally.requests)
        for ms in SLOW_MS["loop commits"]
    )
    return f"{per_thousand(made, tally.requests)}; {slow}"


def render(
    rates: list[int],
    disk: dict[int, list[float]],
    disk_stolen: dict[int, StolenWindows],
    tallies: dict[tuple[str, int], Tally],
    labels: dict[str, str],
) -> list[str]:
    lines = [
        "| rate | server | added P50 / P99 / P99.9 ms | max ms | decisions > 2.5 / > 10 ms "
        "per 1,000 requests | audit commits > 2.5 / > 10 ms per 1,000 requests | "
        "writer hand-offs > 0.5 / > 2 ms | commits on the loop per 1,000 requests; of them "
        "> 1 / > 5 ms | GC pauses > 10 ms | loop lag > 10 ms | "
        f"CPU stolen: share, stalls / {WINDOW_SECONDS * 1000:.0f}-ms windows |",
        "|---|---|---|---:|---|---|---|---|---:|---:|---|",
    ]
    for rate in rates:
        probe = sorted(disk[rate])
        n = len(probe)
        lines.append(
            f"| {rate:,} req/s | the disk alone: 4 KiB append + fsync | "
            f"{statistics.median(probe):.2f} / {probe[int(n * 0.99)]:.2f} / "
            f"{probe[min(n - 1, int(n * 0.999))]:.2f} (the fsync itself) | {probe[-1]:.1f} | "
            f"| fsyncs > 2.5 / > 10 ms: {per_thousand(sum(d > 2.5 for d in probe), n)} / "
            f"{per_thousand(sum(d > 10 for d in probe), n)} | | | | | "
            f"{disk_stolen[rate].describe()} |"
        )
        base = tallies[("direct", rate)]
        for key, label in labels.items():
            tally = tallies[(key, rate)]
            if key == "direct":
                figures = (
                    f"{tally.pct(50):.2f} / {tally.pct(99):.2f} / {tally.pct(99.9):.2f} (baseline)"
                )
                lines.append(
                    f"| | {label} | {figures} | {tally.pct(100):.1f} | | | | | | | "
                    f"{tally.stolen.describe()} |"
                )
                continue
            added = " / ".join(f"+{tally.pct(q) - base.pct(q):.2f}" for q in (50, 99, 99.9))
            decisions, commits = (
                " / ".join(per_thousand(tally.slow[name][ms], tally.requests) for ms in bounds)
                for name, bounds in SLOW_MS.items()
                if name in ("decisions", "commits")
            )
            lines.append(
                f"| | {label} | {added} | {tally.pct(100):.1f} | {decisions} | {commits} | "
                f"{handoff_shares(tally)} | {loop_commits(tally)} | "
                f"{tally.slow['gc pauses'][10]:.0f} | {tally.slow['loop lag'][10]:.0f} | "
                f"{tally.stolen.describe()} |"
            )
    return lines


def render_phases(
    phases: list[tuple[int, int, str, Phase, StolenWindows]], labels: dict[str, str]
) -> list[str]:
    """Each phase on its own, with what was stolen during it: a tail that comes and goes
    with the host's share shows as such."""
    lines = [
        "Each phase (whole latency, not added):",
        "",
        "| rate | round | server | CPU stolen | P50 / P99 ms | max ms |",
        "|---|---:|---|---:|---|---:|",
    ]
    for rate, round_, key, phase, stolen in sorted(phases, key=lambda p: (p[0], p[1])):
        lines.append(
            f"| {rate:,} req/s | {round_ + 1} | {labels[key]} | {stolen.share:.0%} | "
            f"{phase.pct(50):.2f} / {phase.pct(99):.2f} | {phase.pct(100):.1f} |"
        )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="30,300", help="comma-separated req/s (30,300)")
    parser.add_argument("--seconds", type=float, default=15, help="each phase (15)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, servers interleaved (3)")
    parser.add_argument("--stream", action="store_true", help="streaming requests")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    parser.add_argument(
        "--pg-dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create (and drop) tether-pg's database",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated servers to leave out: tether-thread,tether-normal,tether-pg",
    )
    args = parser.parse_args(argv)
    skip = {name for name in args.skip.split(",") if name}
    rates = [int(r) for r in args.rates.split(",")]
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="tether-tails-"))
    labels = {
        "direct": "upstream directly",
        "tether-full": "tether, SQLite `synchronous=FULL` (the default)",
        "tether-thread": "tether, SQLite `FULL`, commits on the writer thread",
        "tether-normal": "tether, SQLite `synchronous=NORMAL`",
        "tether-pg": "tether, PostgreSQL",
    }
    labels = {key: label for key, label in labels.items() if key not in skip}
    tallies = {(key, rate): Tally() for key in labels for rate in rates}
    phases: list[tuple[int, int, str, Phase, StolenWindows]] = []
    disk: dict[int, list[float]] = {rate: [] for rate in rates}
    disk_stolen = {rate: StolenWindows() for rate in rates}
    with ExitStack() as stack:
        lab = Lab(workdir, stack, say=say)
        targets = {"direct": start_upstream(lab)}
        targets["tether-full"] = start_tether(lab, "tether-full", labels["tether-full"])
        for key, env in SQLITE_VARIANTS.items():
            if key in labels:
                targets[key] = start_tether(lab, key, labels[key], extra_env=env)
        if "tether-pg" in labels:
            targets["tether-pg"] = start_tether_postgres(lab, args.pg_dsn)
            targets["tether-pg"].label = labels["tether-pg"]
        for round_ in range(args.rounds):
            for rate in rates:
                with StolenCpu() as stolen:
                    disk[rate] += disk_probe(workdir, rate, args.seconds)
                disk_stolen[rate].add(stolen.result())
                for key, target in targets.items():
                    url = f"http://127.0.0.1:{target.endpoint.port}"
                    tag = f"{key}-{round_}-{rate}-{time.monotonic_ns()}"
                    warm_up(target, rate, args.stream, tag)
                    before = buckets(url) if key != "direct" else {}
                    phase, stolen_in_phase = run_phase(target, rate, args.seconds, args.stream, tag)
                    tally = tallies[(key, rate)]
                    tally.add_phase(phase)
                    tally.stolen.add(stolen_in_phase)
                    phases.append((rate, round_, key, phase, stolen_in_phase))
                    if key != "direct":
                        tally_histograms(tally, before, buckets(url))
                    say(
                        f"round {round_} {rate:>5}/s {key:<14} P50 {phase.pct(50):6.2f} "
                        f"P99 {phase.pct(99):7.2f} max {phase.pct(100):7.2f} ms "
                        f"stolen {stolen_in_phase.share:4.0%} {phase.overloaded}"
                    )
    mode = "streaming" if args.stream else "JSON"
    command = "uv run python bench/tails.py " + " ".join(
        a for a in argv if not a.startswith("--out") and not a.endswith(".md")
    )
    lines = [
        f"`{command.strip()}`: open loop, {mode}, {args.rounds} rounds of {args.seconds:g} s "
        f"per server and rate, interleaved; load average {load_before} before, "
        f"{load_average()} after.",
        "",
        *render(rates, disk, disk_stolen, tallies, labels),
        "",
        "*CPU stolen*: of the CPU time this machine's processes asked for over the phases, "
        "the share the hypervisor gave to other guests instead (`steal` in `/proc/stat`), "
        f"and in how many {WINDOW_SECONDS * 1000:.0f}-ms windows it took at least "
        f"{STALL_SHARE:.0%} of one core's time. While the host takes the CPU, every process "
        "here stands still, the upstream and the load generator included; zero on a machine "
        "of one's own.",
        "",
        *render_phases(phases, labels),
    ]
    section = "\n".join(lines)
    print(section)
    if args.out is not None:
        write_marked(args.out, section, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
