"""Instructions a request, counted by callgrind: a measure of CPU work the host's speed
does not move. On this shared machine the pass-through's CPU a request drifted from 0.16
to 0.36 ms in one day and a round's tether/pass-through ratio from 2.58 to 3.90 in one
run, while callgrind's counts repeated within 3 % over three runs (the pass-through's
within 1 %), run beside each other: a change of 2 % shows here, not there.

Each server runs under ``valgrind --tool=callgrind`` (about 50 times slower), is warmed
up, then counted over an idle stretch and over a closed-loop load; its instructions a
request are the loaded count less the idle rate over the load's duration (periodic work
runs by the clock, and under valgrind a second holds few requests). User-space
instructions only: the kernel's share (socket writes, thread wake-ups) is not counted,
and at valgrind's pace a commit carries fewer requests than under real load.

    uv run python bench/instructions.py                      # pass-through and tether
    uv run python bench/instructions.py --tree ../other      # and tether from another checkout

Needs ``valgrind`` (Debian: ``apt-get install -y valgrind``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import uvloop
from comparison.load import closed_loop
from comparison.targets import Lab, Target, start_passthrough, start_tether, start_upstream

READY_SECONDS = 900
CONCURRENCY = 8


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/instructions.py", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20, help="the measured load (20)")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="also tether from this checkout (its src/), beside this one's; repeatable",
    )
    return parser.parse_args(argv)


def callgrind_python(workdir: Path) -> str:
    """A python that runs under callgrind, writing its counts into ``workdir``."""
    wrapper = workdir / "python-under-callgrind"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec valgrind --tool=callgrind --callgrind-out-file={workdir}/callgrind.%p.out "
        f'--dump-instr=no --collect-jumps=no {sys.executable} "$@" '
        f"2>>{workdir}/valgrind.log\n"
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def counted(pid: int, workdir: Path) -> int:
    """Instructions since the last ``callgrind_control -z``, from a dump made now."""
    for old in workdir.glob(f"callgrind.{pid}.out*"):
        old.unlink()
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    total = 0
    for dump in workdir.glob(f"callgrind.{pid}.out*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")):
                total += int(line.split()[1])
                break
    return total


def zero(pid: int) -> None:
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)


def load(target: Target, seconds: float, tag: str) -> int:
    phase = uvloop.run(closed_loop(target.endpoint, False, CONCURRENCY, seconds, tag, target.probe))
    return phase.ok


def instructions_per_request(target: Target, seconds: float, workdir: Path) -> tuple[int, float]:
    """(requests counted, instructions a request less the idle rate)."""
    pid = target.measured[0].pid
    load(target, seconds / 2, f"{target.key}-warm-{time.monotonic_ns()}")
    zero(pid)
    time.sleep(seconds / 2)
    idle_rate = counted(pid, workdir) / (seconds / 2)
    zero(pid)
    started = time.monotonic()
    requests = load(target, seconds, f"{target.key}-{time.monotonic_ns()}")
    busy = counted(pid, workdir)
    return requests, (busy - idle_rate * (time.monotonic() - started)) / max(requests, 1)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install -y valgrind)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="tether-instructions-"))
    python = callgrind_python(workdir)
    results: list[tuple[str, int, float]] = []
    with ExitStack() as stack:
        lab = Lab(workdir, stack)
        start_upstream(lab)
        targets = {
            "bare aiohttp pass-through": start_passthrough(lab, python, READY_SECONDS),
            "tether, every control on, SQLite": start_tether(
                lab, "tether", "tether", python=python, ready_seconds=READY_SECONDS
            ),
        }
        for n, tree in enumerate(args.tree):
            targets[f"tether from {tree}"] = start_tether(
                lab, f"tether-tree-{n}", str(tree), python=python, ready_seconds=READY_SECONDS,
                extra_env={"PYTHONPATH": str(tree.resolve() / "src")},
            )  # fmt: skip
        for label, target in targets.items():
            requests, per_request = instructions_per_request(target, args.seconds, workdir)
            results.append((label, requests, per_request))
            print(f"  {label:<40} {requests:6,} requests  {per_request / 1e3:9,.0f}k", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    base = results[0][2]
    print("\n| server | requests counted | instructions a request | ratio to the pass-through |")
    print("|---|---:|---:|---:|")
    for label, requests, per_request in results:
        ratio = per_request / base
        print(f"| {label} | {requests:,} | {per_request / 1e3:,.0f}k | {ratio:.2f} x |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
