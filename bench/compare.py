"""Side by side, one run: the upstream directly, a bare aiohttp pass-through, tether with
every control on (SQLite; SQLite with a client that names no session; PostgreSQL) and
LiteLLM proxy, all started on this machine in front of the same fake Anthropic API and
driven by one load generator. Writes the table to docs/benchmarks.md and prints it.

    uv run python bench/compare.py              # the full run (about 6 to 8 minutes)
    uv run python bench/compare.py --quick      # about 2 minutes; prints only
    uv run python bench/compare.py --skip litellm,tether-pg --out /tmp/bench.md
    uv run python bench/compare.py --profile    # where a request's CPU goes, by stage
    uv run python bench/compare.py --profile --rounds 5 --fixed-rate 1000 --instances 2
    uv run python bench/compare.py --doors 5    # the model doors' CPU per call, 5 rounds
    uv run python bench/compare.py --doors 5 --doors-rate 150   # … at the same req/s each

Every server is stopped at the end, also on an error or Ctrl-C. A server that cannot be
installed or started (LiteLLM offline, PostgreSQL absent) is reported with the reason and
the rest is measured. See docs/benchmarks.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import uvloop
from comparison import litellm_proxy
from comparison.document import write_profile_section, write_section
from comparison.load import Phase, closed_loop, open_loop
from comparison.processes import wait_idle
from comparison.profile import ProfiledServer, Sampler, mean_over_copies
from comparison.profile import render as render_profile
from comparison.report import render, stolen_clause
from comparison.results import Machine, Run, ServerResult, fsync_ms, load_average, tether_revision
from comparison.stolen import StolenCpu, cpu_ticks
from comparison.targets import (
    NEW_SESSION_WARM_REQUESTS,
    TETHER_CONTROLS,
    Lab,
    Target,
    start_litellm,
    start_passthrough,
    start_tether,
    start_tether_postgres,
    start_upstream,
)

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")
SERVERS = [
    "direct",
    "passthrough",
    "tether-sqlite",
    "tether-bedrock",
    "tether-converse",
    "tether-vertex",
    "tether-new-session",
    "tether-pg",
    "litellm",
]
OPTIONAL_SERVERS = ["tether-pg-workers", "tether-new-session-no-session-budget"]
"""Run only when named in ``--only``: not part of the published table's full run."""
RATES = [30, 100, 300, 1000]
PROFILED = ["passthrough", "tether-sqlite", "tether-new-session"]
TRAILING_SECONDS = 5.0
"""After a ``--profile`` phase, how long the work its calls leave behind is counted with it:
a new session's budget lease goes back once idle for 3 s, at the flush after."""
IDLE_SECONDS = 1.0
"""Before it, how long the idle server's own CPU is read, to take off the trailing part."""
DOORS = ["tether-sqlite", "tether-bedrock", "tether-converse", "tether-vertex"]
"""``--doors``: the Messages door first (the baseline), then each cloud door."""
DOOR_NAMES = {
    "tether-sqlite": "Messages (`/v1/messages`)",
    "tether-bedrock": "`/bedrock` (InvokeModel)",
    "tether-converse": "`/bedrock` (Converse)",
    "tether-vertex": "`/vertex`",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/compare.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1.5 s phases; prints only")
    parser.add_argument(
        "--seconds", type=float, help="length of each measured phase (6; quick 1.5)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients (32)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of {','.join(SERVERS)} (and, only when named, "
        f"{','.join(OPTIONAL_SERVERS)})",
    )
    parser.add_argument("--skip", default="", help="comma-separated servers to leave out")
    parser.add_argument(
        "--pg-dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create (and drop) the PostgreSQL database",
    )
    parser.add_argument("--litellm-venv", type=Path, default=litellm_proxy.DEFAULT_VENV)
    parser.add_argument(
        "--litellm-version",
        default=litellm_proxy.DEFAULT_VERSION,
        help="litellm[proxy] version to install, or 'latest'",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="Markdown file to write the section into "
        "(default: docs/benchmarks.md for a full run of every server; none "
        "for --quick or a subset)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the comparison: each server's CPU per request by pipeline stage "
        "(py-spy), with the ratio to the bare pass-through; written to docs/benchmarks.md",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="with --profile: CPU per request is the median of this many closed-loop "
        "phases per server, the servers taking turns (3)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="with --profile: start each tether this many times and take each round's "
        "mean over them (two processes running the same code can differ by a few percent "
        "for as long as they run); py-spy samples the first (1)",
    )
    parser.add_argument(
        "--fixed-rate",
        type=int,
        metavar="RPS",
        help="with --profile: also each server's CPU per request in an open-loop phase at "
        "this rate every round, the servers taking turns: the same pace for all (at "
        "saturation a faster server carries more requests a commit and a wake-up)",
    )
    parser.add_argument(
        "--doors",
        type=int,
        metavar="ROUNDS",
        help="instead of the comparison: the Messages, /bedrock (InvokeModel and Converse) "
        "and /vertex doors started together and loaded at the same time (closed loop, the "
        "clients shared out), JSON then streaming, ROUNDS rounds; prints each door's CPU "
        "per call against the Messages door's in the same round",
    )
    parser.add_argument(
        "--doors-rate",
        type=int,
        metavar="RPS",
        help="with --doors: load every door at this same rate (open loop) instead of the "
        "closed loop, so each door's CPU per call is compared at the same throughput (a "
        "door answered more slowly upstream does not pay for being less busy)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the servers' logs and databases (kept anyway when one failed)",
    )
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or list(SERVERS)
    skipped = {s for s in args.skip.split(",") if s}
    known = SERVERS + OPTIONAL_SERVERS
    unknown = (set(chosen) | skipped) - set(known)
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    args.servers = [s for s in known if s in chosen and s not in skipped]
    if args.profile and not args.only:
        args.servers = [s for s in PROFILED if s not in skipped]
    if args.doors:
        args.servers = [s for s in DOORS if s in args.servers or not args.only]
        args.servers = [s for s in args.servers if s not in skipped]
        if args.servers[:1] != ["tether-sqlite"]:
            parser.error("--doors compares against the Messages door: keep tether-sqlite")
    if args.seconds is None:
        args.seconds = 1.5 if args.quick else 6.0
    if args.out is None and args.profile and not args.quick:
        args.out = REPO / "docs" / "benchmarks.md"
    if args.out is None and not args.quick and args.servers == SERVERS:
        args.out = REPO / "docs" / "benchmarks.md"
    if args.no_write:
        args.out = None
    return args


OUTPUT_OPTIONS = {"--out": 1, "--json": 1, "--no-write": 0, "--keep": 0}


def profile_servers(args: argparse.Namespace, command: str, say: Callable[[str], None]) -> int:
    """Each server's CPU per request from /proc, the median of ``--rounds`` closed-loop
    phases in which the servers take turns (the machine's speed drifts; turns move every
    column alike), then the same load again with py-spy attached for the shares by stage."""
    profiles: dict[str, ProfiledServer] = {}
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="tether-profile-"))
    with ExitStack() as stack:
        stolen = stack.enter_context(StolenCpu())
        upstream_lab = Lab(workdir, stack, say=say)
        start_upstream(upstream_lab)
        lab = Lab(workdir, stack, upstream_lab.upstream_url, say)
        targets = {key: start(key, lab, args) for key in args.servers}
        measured, groups = start_copies(targets, args, lab)
        all_threads, main_thread = cpu_in_turns(measured, args, say)
        rounds = _every_round(mean_over_copies(all_threads, groups))
        main_rounds = _every_round(mean_over_copies(main_thread, groups))
        at_rate = (
            mean_over_copies(cpu_at_rate_in_turns(measured, args, say), groups)
            if args.fixed_rate
            else {}
        )
        for key, target in targets.items():
            wait_idle(target.pids())
            with Sampler(target.measured[0].pid) as sampler:
                run_async(
                    closed_loop(target.endpoint, False, args.concurrency, args.seconds,
                                f"{key}-{time.monotonic_ns()}-profiled", target.probe)
                )  # fmt: skip
            profile = sampler.profile()
            cpu_ms = statistics.median(rounds[key])
            main_ms = statistics.median(main_rounds[key])
            say(
                f"  {key:<20} CPU {cpu_ms:.3f} ms/req (median; main thread "
                f"{main_ms:.3f})  {profile.total:,} samples {profile.error}"
            )
            label = LABELS.get(key, key)
            profiles[key] = ProfiledServer(
                label, profile, cpu_ms, main_ms, rounds[key], at_rate.get(key, [])
            )
    shutil.rmtree(workdir, ignore_errors=True)
    baseline = profiles.get("passthrough")
    lines = [
        "## Where a request's CPU goes",
        "",
        f"`{command}`: closed loop, {args.concurrency} clients, JSON, {args.seconds:g} s per "
        f"phase; load average {load_before} before, {load_average()} after"
        f"{stolen_clause(stolen.result().share if cpu_ticks() else None)} (a shared machine: "
        "compare the columns of one run, not runs).",
        "",
        f"CPU per request is measured from /proc without the profiler: the median of "
        f"{args.rounds} closed-loop phases per server, after unmeasured warm-up (one "
        "phase; for the new-session path, phases until it has started "
        f"{NEW_SESSION_WARM_REQUESTS:,} sessions, more than tether keeps in memory, so it "
        "is measured evicting one a call as a fleet's server is), each phase's CPU with "
        f"what its calls leave for the {TRAILING_SECONDS:g} s after it (a new session's "
        "budget lease goes back about 4 s after its call), less the idle server's own, "
        "the servers taking "
        "turns (this machine's speed drifts from minute to minute; turns move every "
        "column alike); *each round's own* ratio divides a "
        "server's CPU by the pass-through's in the same round, so the host's drift between "
        "rounds cancels. The "
        "shares come from py-spy sampling the server (`--nonblocking`, all threads) in a "
        "further phase. A sample counts for the stage whose code its innermost tether "
        "frame is in (`bench/comparison/profile.py` lists the paths): the store calls a "
        "stage makes are that stage's; *parse* is the front door (reading and parsing the "
        "request, translating it, writing the answer); *relay* is the upstream call and "
        "its answer; the SQLite writer thread is shown on its own. *Main thread* is the "
        "CPU of the thread that runs the event loop alone (`/proc/PID/task/PID`, the same "
        "phases): what no other thread can take off it."
        + (
            f" Each tether ran as {args.instances} processes, started alike; a round's "
            "figure is their mean (two processes running the same code can differ by a "
            "few percent for as long as they run)."
            if args.instances > 1
            else ""
        )
        + (
            f" *At {args.fixed_rate:,} req/s*: the CPU per request of an open-loop phase at "
            "that rate in each round (the servers taking turns), the same pace for every "
            "server; under the closed loop a faster server carries more requests a commit "
            "and a loop wake-up."
            if args.fixed_rate
            else ""
        ),
        "",
        *render_profile(profiles, baseline, args.fixed_rate or 0),
    ]
    section = "\n".join(lines)
    print("\n" + section)
    if args.out is not None:
        write_profile_section(args.out, section)
        say(f"written to {args.out}")
    return 0


def cpu_in_turns(
    targets: dict[str, Target], args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per server, the CPU per request of each of ``args.rounds`` closed-loop phases, all
    threads and the main thread's alone; each round loads every server once, in the other
    order from the round before, after each server's ``warm_up``."""
    for target in targets.values():
        warm_up(target, args)
    runs: dict[str, list[float]] = {key: [] for key in targets}
    main: dict[str, list[float]] = {key: [] for key in targets}

    def load(key: str, target: Target) -> Coroutine[Any, Any, Phase]:
        return closed_loop(target.endpoint, False, args.concurrency, args.seconds,
                           f"{key}-{time.monotonic_ns()}-cpu", target.probe)  # fmt: skip

    for round_number, key, phase in phases_in_turns(targets, args.rounds, load):
        runs[key].append(phase.cpu_ms_per_request())
        main[key].append(phase.cpu_ms_per_request("main thread"))
        say(
            f"  round {round_number + 1}: {key:<20} {phase.throughput:8,.0f} req/s  "
            f"CPU {runs[key][-1]:.3f} ms/req (main thread {main[key][-1]:.3f})"
        )
    return runs, main


def phases_in_turns(
    targets: dict[str, Target],
    rounds: int,
    load: Callable[[str, Target], Coroutine[Any, Any, Phase]],
) -> Iterator[tuple[int, str, Phase]]:
    """Each round, every server's phase of ``load`` (``in_turns``), with the work it leaves
    behind (``with_trailing_work``)."""
    for round_number, key, target in in_turns(targets, rounds):
        yield round_number, key, with_trailing_work(target, load(key, target))


def with_trailing_work(target: Target, load: Coroutine[Any, Any, Phase]) -> Phase:
    """The phase's CPU with what its calls leave for the ``TRAILING_SECONDS`` after it (a
    new session's lease goes back seconds after its call: without this, the sessions of a
    phase's last seconds would be charged to no phase), less what the idle server spends
    anyway, read over ``IDLE_SECONDS`` just before."""
    before = target.probe()
    time.sleep(IDLE_SECONDS)
    idle = {part: (cpu - before[part]) / IDLE_SECONDS for part, cpu in target.probe().items()}
    phase = run_async(load)
    ended = target.probe()
    time.sleep(TRAILING_SECONDS)
    for part, cpu in target.probe().items():
        left = cpu - ended[part] - idle.get(part, 0.0) * TRAILING_SECONDS
        phase.cpu[part] = phase.cpu.get(part, 0.0) + max(0.0, left)
    return phase


def in_turns(targets: dict[str, Target], rounds: int) -> Iterator[tuple[int, str, Target]]:
    """Each round, every server once, once it is idle: in the other order from the round
    before, so the host's drift over a round moves every server alike."""
    for round_number in range(rounds):
        keys = list(targets) if round_number % 2 == 0 else list(reversed(targets))
        for key in keys:
            wait_idle(targets[key].pids())
            yield round_number, key, targets[key]


def start_copies(
    targets: dict[str, Target], args: argparse.Namespace, lab: Lab
) -> tuple[dict[str, Target], dict[str, list[str]]]:
    """``--instances``: more processes of each tether (the pass-through has no state to
    differ by), each in a directory of its own. Every process to measure by name, and
    each server's processes' names."""
    measured = dict(targets)
    groups = {key: [key] for key in targets}
    for copy in range(2, args.instances + 1):
        workdir = lab.workdir / f"copy-{copy}"
        workdir.mkdir()
        other = Lab(workdir, lab.stack, lab.upstream_url, lab.say)
        for key in targets:
            if key.startswith("tether"):
                name = f"{key}#{copy}"
                measured[name] = start(key, other, args)
                groups[key].append(name)
    return measured, groups


def _every_round(merged: dict[str, list[float | None]]) -> dict[str, list[float]]:
    """A closed loop keeps pace by definition: no round is missing."""
    return {key: [v for v in values if v is not None] for key, values in merged.items()}


def cpu_at_rate_in_turns(
    targets: dict[str, Target], args: argparse.Namespace, say: Callable[[str], None]
) -> dict[str, list[float | None]]:
    """Per server, the CPU per request of an open-loop phase at ``args.fixed_rate`` in
    each of ``args.rounds`` rounds, in turns as ``cpu_in_turns``; None for a phase the
    server could not keep pace in."""
    runs: dict[str, list[float | None]] = {key: [] for key in targets}

    def load(key: str, target: Target) -> Coroutine[Any, Any, Phase]:
        return open_loop(target.endpoint, False, args.fixed_rate, args.seconds,
                         f"{key}-{time.monotonic_ns()}-rate", target.probe)  # fmt: skip

    for round_number, key, phase in phases_in_turns(targets, args.rounds, load):
        runs[key].append(None if phase.overloaded else phase.cpu_ms_per_request())
        say(
            f"  round {round_number + 1} at {args.fixed_rate:,} req/s: {key:<20} "
            + (
                f"OVERLOADED: {phase.overloaded}"
                if phase.overloaded
                else f"CPU {phase.cpu_ms_per_request():.3f} ms/req"
            )
        )
    return runs


def compare_doors(args: argparse.Namespace, command: str, say: Callable[[str], None]) -> int:
    """The model doors side by side: one tether per door, all started first, then rounds
    in which every door is loaded at the same time; each door's CPU per call divided by
    the Messages door's in the same round (so the machine's load, which drifts on a shared
    machine, is the same for all of them and cancels out of the ratio as far as it can)."""
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="tether-doors-"))
    cpu: dict[tuple[str, bool], list[float]] = {}
    with ExitStack() as stack:
        lab = Lab(workdir, stack, say=say)
        start_upstream(lab)
        targets = {key: start(key, lab, args) for key in args.servers}
        clients = max(1, args.concurrency // len(targets))
        for round_ in range(args.doors):
            for stream in (False, True):
                phases = run_async(
                    _together(targets, stream, clients, args.seconds, round_, args.doors_rate)
                )
                for key, phase in phases.items():
                    if phase.errors:
                        say(f"  {key}: {phase.errors} errors: {phase.error_sample[:200]}")
                    if phase.overloaded:
                        say(f"  {key}: overloaded ({phase.overloaded}): lower --doors-rate")
                    cpu.setdefault((key, stream), []).append(phase.cpu_ms_per_request())
                    say(
                        f"  round {round_ + 1} {key:<16} {'stream' if stream else 'json':<6} "
                        f"{phase.throughput:7,.0f} req/s  CPU {phase.cpu_ms_per_request():.3f} "
                        "ms/req"
                    )
                wait_idle([pid for target in targets.values() for pid in target.pids()])
    shutil.rmtree(workdir, ignore_errors=True)
    load = (
        f"open loop, {args.doors_rate} req/s each"
        if args.doors_rate
        else f"closed loop, {clients} clients each"
    )
    lines = [
        f"`{command}`: every door loaded at once ({load}, "
        f"{args.seconds:g} s per phase, JSON then streaming), {args.doors} rounds; load "
        f"average {load_before} before, {load_average()} after.",
        "",
        "| door | CPU ms/call JSON, median (min to max) | vs Messages, JSON | streaming "
        "| vs Messages, streaming |",
        "|---|---|---|---|---|",
    ]
    for key in args.servers:
        cells = [DOOR_NAMES[key]]
        for stream in (False, True):
            mine, base = cpu[(key, stream)], cpu[("tether-sqlite", stream)]
            ratios = [m / b - 1 for m, b in zip(mine, base, strict=True)]
            cells.append(f"{statistics.median(mine):.3f} ({min(mine):.3f} to {max(mine):.3f})")
            cells.append(
                "baseline"
                if key == "tether-sqlite"
                else f"{statistics.median(ratios):+.1%} (rounds {min(ratios):+.0%} to "
                f"{max(ratios):+.0%})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    print("\n" + "\n".join(lines))
    return 0


async def _together(
    targets: dict[str, Target],
    stream: bool,
    clients: int,
    seconds: float,
    round_: int,
    rate: int | None = None,
) -> dict[str, Phase]:
    """One phase on every door at the same time: whatever else the machine is doing
    meanwhile, every door shares it alike. Closed loop; or, given ``rate``, open loop at
    that rate on each (CPU per call falls as a server gets busier, each event-loop turn and
    SQLite commit serving more calls: a door answered more slowly in a closed loop is
    less busy, and its CPU per call higher for that alone)."""
    phases = await asyncio.gather(
        *(
            open_loop(target.endpoint, stream, rate, seconds,
                      f"{key}-{round_}-{time.monotonic_ns()}", target.probe)
            if rate
            else closed_loop(target.endpoint, stream, clients, seconds,
                             f"{key}-{round_}-{time.monotonic_ns()}", target.probe)
            for key, target in targets.items()
        )
    )  # fmt: skip
    return dict(zip(targets, phases, strict=True))


def measuring_options(argv: list[str]) -> list[str]:
    """``argv`` without the options that only say where results go: the command that
    reproduces the figures."""
    kept, skip = [], 0
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip:
            skip -= 1
        elif name in OUTPUT_OPTIONS:
            skip = OUTPUT_OPTIONS[name] if "=" not in arg else 0
        else:
            kept.append(arg)
    return kept


def plan(rates: list[int]) -> list[tuple[str, bool, int]]:
    """(kind, streaming, rate) in the order run: the maximum first, then rising rates."""
    return [("closed", False, 0), ("closed", True, 0)] + [
        ("open", False, rate) for rate in rates
    ] + [("open", True, 300)]  # fmt: skip


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """One phase on a fresh uvloop, the garbage collector held off while it measures."""
    gc.collect()
    gc.disable()
    try:
        return uvloop.run(coro)
    finally:
        gc.enable()


def why_skip(server: ServerResult, kind: str, stream: bool, rate: int) -> str:
    """A rate that cannot be sustained is not run: above the closed-loop maximum, or above a
    lower rate that was already overloaded."""
    if kind == "closed":
        return ""
    best = server.max_throughput(stream)
    if best is not None and best < rate:
        return f"its maximum was {best:,.0f} req/s"
    for phase in server.phases:
        if phase.kind == "open" and not phase.stream and phase.rate <= rate and not phase.measured:
            return f"{phase.rate:,} req/s (JSON) already was"
    return ""


def measure(
    target: Target, result: ServerResult, args: argparse.Namespace, say: Callable[[str], None]
) -> None:
    result.rss_idle_mb = result.rss_peak_mb = target.rss_mb()
    warm_up(target, args)
    for kind, stream, rate in plan(RATES):
        mode = "stream" if stream else "json"
        reason = why_skip(result, kind, stream, rate)
        if reason:
            phase = Phase(kind, stream, rate=rate, skipped=reason)
        else:
            tag = f"{target.key}-{kind}{rate}-{mode}-{time.monotonic_ns()}"
            if kind == "closed":
                coro = closed_loop(
                    target.endpoint, stream, args.concurrency, args.seconds, tag, target.probe
                )
            else:
                coro = open_loop(target.endpoint, stream, rate, args.seconds, tag, target.probe)
            with StolenCpu() as stolen:
                phase = run_async(coro)
            phase.stolen = stolen.result().share
            phase.rss_mb = target.rss_mb()
            result.rss_peak_mb = max(result.rss_peak_mb, phase.rss_mb)
            wait_idle(target.pids())
        result.phases.append(phase)
        say(f"  {target.key:<20} {phase.name:<24} {summary(phase)}")


def warm_up(target: Target, args: argparse.Namespace) -> None:
    """Closed-loop phases, not measured, at least one and until the server has served its
    ``warm_requests``: a new server's first seconds (its database's first pages, its
    caches filling) cost a quarter more CPU than the ones after, and a fleet's servers run
    for days (one starting a session every call costs 5 % more once its caches are full
    and evicting, after some 25,000 sessions)."""
    served = 0
    while True:
        phase = run_async(
            closed_loop(target.endpoint, False, args.concurrency, args.seconds,
                        f"{target.key}-{time.monotonic_ns()}-warm-up", target.probe)
        )  # fmt: skip
        served += phase.ok
        if served >= target.warm_requests or not phase.ok:
            break
    wait_idle(target.pids())


def summary(phase: Phase) -> str:
    if phase.skipped:
        return f"overloaded (not run: {phase.skipped})"
    text = (
        f"{phase.throughput:8,.0f} req/s  P50/P99 {phase.pct(50):6.2f}/{phase.pct(99):7.2f} ms"
        f"  CPU {phase.cpu_ms_per_request():.3f} ms/req"
    )
    if "postgres" in phase.cpu:
        text += f" (+{phase.cpu_ms_per_request('postgres'):.3f} PostgreSQL)"
    if phase.stolen:
        text += f"  stolen {phase.stolen:.0%}"
    if phase.overloaded:
        text += f"  OVERLOADED: {phase.overloaded}"
    if phase.errors:
        text += f"  errors {phase.errors}: {phase.error_sample[:120]}"
    return text


def start(key: str, lab: Lab, args: argparse.Namespace) -> Target:
    if key == "passthrough":
        return start_passthrough(lab)
    if key == "tether-sqlite":
        return start_tether(lab, key, "tether, every control on, SQLite")
    if key in ("tether-bedrock", "tether-converse", "tether-vertex"):
        wire = key.removeprefix("tether-")
        return start_tether(lab, key, LABELS[key], wire=wire)
    if key == "tether-new-session":
        return start_tether(
            lab, key, "tether, SQLite, no session header (a new session every call)",
            session_header=False,
        )  # fmt: skip
    if key == "tether-new-session-no-session-budget":
        return start_tether(
            lab, key, LABELS[key], session_header=False, session_budget=False
        )  # fmt: skip
    if key == "tether-pg":
        return start_tether_postgres(lab, args.pg_dsn)
    if key == "tether-pg-workers":
        return start_tether_postgres(lab, args.pg_dsn, workers=2)
    if key == "litellm":
        return start_litellm(lab, args.litellm_venv, args.litellm_version)
    raise ValueError(key)


LABELS = {
    "passthrough": "bare aiohttp pass-through",
    "tether-sqlite": "tether, every control on, SQLite",
    "tether-bedrock": "tether's /bedrock door, every control on, SQLite",
    "tether-converse": "tether's /bedrock door in Converse, every control on, SQLite",
    "tether-vertex": "tether's /vertex door, every control on, SQLite",
    "tether-new-session": "tether, SQLite, no session header",
    "tether-new-session-no-session-budget": "tether, SQLite, no session header, no per-session "
    "budget",
    "tether-pg": "tether, every control on, PostgreSQL",
    "tether-pg-workers": "tether, every control on, PostgreSQL, 2 workers",
    "litellm": "LiteLLM proxy, no database",
}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "uv run python bench/compare.py" + "".join(
        f" {shlex.quote(a)}" for a in measuring_options(argv)
    )

    def say(line: str) -> None:
        print(line, flush=True)

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # Also SIGINT: a run started in the background inherits it ignored.
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    if args.profile:
        return profile_servers(args, command, say)
    if args.doors:
        return compare_doors(args, command, say)
    run = Run(
        command, "quick" if args.quick else "full", args.seconds, args.concurrency, RATES,
        Machine.here(),
    )  # fmt: skip
    run.software = tether_revision(REPO)
    if any(key.startswith("tether") for key in args.servers):
        run.notes.append(TETHER_CONTROLS)
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="tether-compare-"))
    run.machine.fsync_ms = fsync_ms(workdir)
    say(
        f"tether side-by-side benchmark ({run.mode}, {args.seconds:g} s phases; "
        f"fsync {run.machine.fsync_ms:.2f} ms; load {run.machine.load_before}; logs in {workdir})"
    )
    with ExitStack() as stack:
        stolen = stack.enter_context(StolenCpu())
        upstream_lab = Lab(workdir, stack, say=say)
        direct = start_upstream(upstream_lab)
        for key in args.servers:
            result = ServerResult(key, LABELS.get(key, direct.label))
            run.servers.append(result)
            with ExitStack() as servers:
                lab = Lab(workdir, servers, upstream_lab.upstream_url, say)
                try:
                    target = direct if key == "direct" else start(key, lab, args)
                except Exception as exc:  # a server that cannot start is reported, not fatal
                    result.unavailable = f"{type(exc).__name__}: {exc}".strip()
                    say(f"  {key:<20} not measured: {result.unavailable}")
                    continue
                result.label, result.notes = target.label, list(target.notes)
                measure(target, result, args, say)
                if target.check is not None:
                    try:
                        result.check = target.check()
                    except Exception as exc:
                        result.check = f"(the after-load check failed: {exc})"
        run.machine.stolen = stolen.result().share if cpu_ticks() is not None else None
    if args.keep or any(s.unavailable for s in run.servers):
        say(f"logs and databases kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    run.minutes = (time.monotonic() - began) / 60
    run.machine.load_after = load_average()
    section = render(run)
    print("\n" + section)
    if args.out is not None:
        write_section(args.out, section)
        say(f"written to {args.out}")
    if args.json is not None:
        args.json.write_text(json.dumps(run.as_json(), indent=2, default=str))
        say(f"figures in {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt as stopped:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the phase cut short
        print(f"\ninterrupted ({stopped or 'Ctrl-C'}); every server was stopped", file=sys.stderr)
        sys.exit(130)
