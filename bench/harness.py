"""What the benchmarks share: timing a coroutine, printing P50/P99 against a baseline
measured in the same run, a free port, waiting for a server, a process's CPU time, and an
in-process runtime on SQLite."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tether.config import Settings
from tether.runtime import Runtime


def pct(samples: list[float], q: float) -> float:
    data = sorted(samples)
    return data[min(len(data) - 1, int(q / 100 * len(data)))]


def report(name: str, samples_ms: list[float], baseline_ms: list[float] | None = None) -> None:
    line = f"  {name:<44} P50 {pct(samples_ms, 50):7.3f} ms  P99 {pct(samples_ms, 99):7.3f} ms"
    if baseline_ms is not None:
        line += (
            f"   added P50 {pct(samples_ms, 50) - pct(baseline_ms, 50):+.3f}"
            f" / P99 {pct(samples_ms, 99) - pct(baseline_ms, 99):+.3f} ms"
        )
    print(line)


async def timed(n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    """Milliseconds of each of ``n`` sequential calls; ``call`` gets the call's index."""
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def wait_http(
    url: str, timeout: float = 30, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until ``url`` answers; raises if it does not in ``timeout`` s, or if ``process`` (the
    server behind it) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time a process (or only one of its threads) has used so far
    (Linux /proc)."""
    stat = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def inprocess_runtime(workdir: Path) -> Runtime:
    """A started runtime on a fresh SQLite file (the caller stops it)."""
    settings = Settings(
        host="127.0.0.1", port=0, data_dir=workdir / "inproc",
        database_url=f"sqlite+aiosqlite:///{workdir}/inproc.db",
    )  # fmt: skip
    return await Runtime.start(settings)
