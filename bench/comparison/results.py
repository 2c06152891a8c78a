"""What one run measured: the machine, each server's phases, and how to find a phase."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from comparison.load import Phase


@dataclass
class ServerResult:
    key: str
    label: str
    notes: list[str] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    unavailable: str = ""
    """Why it was not measured (could not be installed or started), else empty."""
    rss_idle_mb: float = 0.0
    rss_peak_mb: float = 0.0
    check: str = ""

    def phase(self, kind: str, stream: bool, rate: int = 0) -> Phase | None:
        for phase in self.phases:
            if (phase.kind, phase.stream) == (kind, stream) and (
                kind == "closed" or phase.rate == rate
            ):
                return phase
        return None

    def max_throughput(self, stream: bool = False) -> float | None:
        phase = self.phase("closed", stream)
        return phase.throughput if phase is not None and phase.ok else None


@dataclass
class Machine:
    cores: int
    cpu: str
    python: str
    system: str
    load_before: str
    fsync_ms: float = float("nan")
    """Median time to write and fsync 4 KiB where the databases are: SQLite's durable
    commits wait for it, so it bounds tether's throughput on a slow disk."""
    load_after: str = ""
    stolen: float | None = None
    """Of the CPU time asked for during the run, the share the hypervisor gave to other
    guests (``comparison.stolen``); None where it could not be read."""

    @classmethod
    def here(cls) -> Machine:
        cpu = platform.processor() or "unknown CPU"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return cls(
            cores=os.cpu_count() or 0,
            cpu=cpu,
            python=f"{platform.python_implementation()} {platform.python_version()}",
            system=f"{platform.system()} {platform.release()}",
            load_before=load_average(),
        )


def fsync_ms(directory: Path, times: int = 40) -> float:
    samples = []
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(times):
            started = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(samples)


def tether_revision(repo: Path) -> str:
    """The tether measured: its version and git commit (marked when the tree has changes)."""
    from tether import __version__

    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"tether {__version__}"
    return f"tether {__version__} at commit {commit}" + (" with local changes" if dirty else "")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


@dataclass
class Run:
    command: str
    mode: str
    seconds: float
    concurrency: int
    rates: list[int]
    machine: Machine
    software: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    minutes: float = 0.0
    servers: list[ServerResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What holds for several servers (printed before them)."""

    def server(self, key: str) -> ServerResult | None:
        return next((s for s in self.servers if s.key == key and not s.unavailable), None)

    def as_json(self) -> dict[str, Any]:
        """Everything measured, latencies as percentiles (for --json)."""

        def phase(p: Phase) -> dict[str, Any]:
            return {
                "name": p.name, "kind": p.kind, "stream": p.stream, "rate": p.rate,
                "concurrency": p.concurrency, "sent": p.sent, "ok": p.ok, "errors": p.errors,
                "elapsed_s": p.elapsed, "throughput": p.throughput,
                "p50_ms": p.pct(50), "p95_ms": p.pct(95), "p99_ms": p.pct(99),
                "overloaded": p.overloaded, "skipped": p.skipped, "cpu_s": p.cpu,
                "client_cpu_s": p.client_cpu, "rss_mb": p.rss_mb, "error_sample": p.error_sample,
            }  # fmt: skip

        return {
            "command": self.command, "mode": self.mode, "seconds": self.seconds,
            "concurrency": self.concurrency, "rates": self.rates, "software": self.software,
            "machine": vars(self.machine), "started": self.started.isoformat(),
            "minutes": self.minutes, "notes": self.notes,
            "servers": [
                {
                    "key": s.key, "label": s.label, "notes": s.notes, "unavailable": s.unavailable,
                    "rss_idle_mb": s.rss_idle_mb, "rss_peak_mb": s.rss_peak_mb, "check": s.check,
                    "phases": [phase(p) for p in s.phases],
                }
                for s in self.servers
            ],
        }  # fmt: skip
