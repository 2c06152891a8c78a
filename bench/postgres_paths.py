"""Tether on PostgreSQL at one open-loop rate, this checkout beside others (``--tree``): the
added latency over the upstream alone, and tether's and PostgreSQL's CPU a call, for a
client that names its session (the common path) or one that names none (a new session,
its row and its first budget lease on every call). CPU a call counts each phase and
the pause after it (where its leases go back).

Each tether has a database of its own. Phases run one at a time, the versions in turns,
each after the upstream alone at the same rate (its baseline), and each followed by a pause
that lets the leases it made go back: their write-backs then count in its own CPU, not in
the next phase's latency.

    uv run python bench/postgres_paths.py --tree ../before                # common path
    uv run python bench/postgres_paths.py --tree ../before --new-sessions # no session header
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import mkdtemp

from compare import run_async
from comparison.load import open_loop
from comparison.targets import (
    Lab,
    Target,
    create_postgres_database,
    start_tether,
    start_upstream,
)

LEASES_BACK_SECONDS = 5.0
"""A lease unused for 3 s is given back at the next flush (every second)."""


@dataclass
class Version:
    label: str
    target: Target
    postgres_cpu: Callable[[], float] | None
    rounds: list[tuple[float, float, float, float]] = field(default_factory=list)
    """(added P50 ms, added P99 ms, tether CPU ms a call, PostgreSQL CPU ms a call)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/postgres_paths.py", description=__doc__)
    parser.add_argument("--rate", type=int, default=300, help="requests a second (300)")
    parser.add_argument("--seconds", type=float, default=10, help="each phase (10)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, versions in turns (4)")
    parser.add_argument("--new-sessions", action="store_true", help="no session header")
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="also tether from this checkout (its src/); repeatable")  # fmt: skip
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args(argv)


def start(lab: Lab, args: argparse.Namespace, name: str, tree: Path | None) -> Version:
    url, postgres_cpu = create_postgres_database(lab, args.pg_dsn)
    env = {"PYTHONPATH": str(tree.resolve() / "src")} if tree is not None else None
    target = start_tether(lab, name, name, url, session_header=not args.new_sessions, extra_env=env)
    return Version(str(tree) if tree is not None else "this checkout", target, postgres_cpu)


def measure(version: Version, direct: Target, args: argparse.Namespace) -> None:
    tag = f"{version.target.key}-{time.monotonic_ns()}"
    alone = run_async(open_loop(direct.endpoint, False, args.rate, 3, f"d-{tag}", direct.probe))
    target = version.target
    before = version.postgres_cpu() if version.postgres_cpu else 0.0, target.probe()["server"]
    phase = run_async(open_loop(target.endpoint, False, args.rate, args.seconds, tag, target.probe))
    if phase.overloaded:
        print(f"  {version.label}: overloaded ({phase.overloaded})", flush=True)
    time.sleep(LEASES_BACK_SECONDS)
    after = version.postgres_cpu() if version.postgres_cpu else 0.0, target.probe()["server"]
    answered = max(phase.ok, 1)
    version.rounds.append((
        phase.pct(50) - alone.pct(50),
        phase.pct(99) - alone.pct(99),
        (after[1] - before[1]) / answered * 1e3,
        (after[0] - before[0]) / answered * 1e3,
    ))  # fmt: skip
    p50, p99, cpu, pg = version.rounds[-1]
    print(f"  {version.label}: +{p50:.2f} / +{p99:.2f} ms, CPU {cpu:.3f} + {pg:.3f} ms "
          f"(upstream alone P99 {alone.pct(99):.2f} ms)", flush=True)  # fmt: skip


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        lab = Lab(Path(mkdtemp(prefix="tether-postgres-paths-")), stack)
        direct = start_upstream(lab)
        versions = [start(lab, args, "tether", None)]
        versions += [start(lab, args, f"tether-tree-{n}", t) for n, t in enumerate(args.tree)]
        for version in versions:
            target = version.target
            run_async(open_loop(target.endpoint, False, args.rate, 3, "warm", target.probe))
        time.sleep(LEASES_BACK_SECONDS)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for version in versions:
                measure(version, direct, args)
    path = "a new session every call" if args.new_sessions else "a session header"
    print(f"\n{args.rate} req/s, {path}; medians of {args.rounds} rounds")
    print("\n| tether | added P50 ms | added P99 ms (each round) | tether CPU ms a call | "
          "PostgreSQL CPU ms a call |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for version in versions:
        p50, p99, cpu, pg = (statistics.median(c) for c in zip(*version.rounds, strict=True))
        p99s = ", ".join(f"{r[1]:.1f}" for r in version.rounds)
        print(f"| {version.label} | +{p50:.2f} | +{p99:.2f} ({p99s}) | {cpu:.3f} | {pg:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
