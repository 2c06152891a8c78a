"""Where a request's CPU goes (``bench/compare.py --profile``): py-spy samples the server
process from outside (no GIL, no instrumentation; ``--nonblocking``, so the server is not
paused) while the closed-loop load runs, and each sample is put in the stage whose code it
was in — the innermost frame that belongs to a stage wins, so the store calls a stage
makes count as that stage's. The shares times the CPU per request measured from /proc in
an unprofiled phase give milliseconds per stage."""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("identify", ("tether/pipeline/stages/identify", "tether/identity/", "tether/store/agents")),
    (
        "session",
        (
            "tether/pipeline/stages/session",
            "tether/pipeline/stages/kill_switch",
            "tether/pipeline/stages/task_context",
            "tether/sessions/",
            "tether/kill/",
            "tether/store/sessions",
            "tether/store/spend",
            "tether/tasks/",
        ),
    ),
    ("guards", ("tether/pipeline/stages/guards", "tether/guards/", "tether/pipeline/stages/mcp")),
    (
        "policy",
        (
            "tether/pipeline/stages/policy",
            "tether/policy/",
            "tether/pipeline/stages/approval",
            "cedarpy",
        ),
    ),
    (
        "budget",
        (
            "tether/pipeline/stages/budget",
            "tether/pipeline/stages/usage",
            "tether/budgets/",
            "tether/pricing/",
            "tether/store/budget",
            "tether/alerts/",
        ),
    ),
    (
        "audit",
        (
            "tether/audit/",
            "tether/redaction/",
            "tether/pipeline/events",
            "tether/metrics/",
            "prometheus_client",
        ),
    ),
    ("store (SQLite writer thread)", ("tether/store/sqlite_writer", "aiosqlite", "sqlite3")),
    (
        "relay",
        (
            "tether/gateway/anthropic/upstream",
            "tether/gateway/anthropic/stream_tap",
            "tether/gateway/model/calls",
            "aiohttp/client",
            "aiohttp/connector",
            "aiohttp/streams",
        ),
    ),
    ("store (SQLAlchemy, no tether frame)", ("sqlalchemy/",)),
    (
        "parse",
        (
            "tether/gateway/",
            "tether/pipeline/",
            "tether/web/",
            "tether/server",
            "aiohttp/web",
            "aiohttp/http_parser",
            "json/",
        ),
    ),
)
"""Stage: the code paths (substrings of a frame's file) that count as it. The first stage
a frame matches wins; ``parse`` (the front door: reading, parsing and translating the
request, writing the answer) comes last as the catch-all for tether's own code."""

OTHER = "event loop, HTTP server, other"


def stage_of(stack: list[str]) -> str:
    """The stage of one sample; ``stack`` is root first, as py-spy writes it."""
    for frame in reversed(stack):
        for stage, paths in STAGES:
            if any(path in frame for path in paths):
                return stage
    return OTHER


@dataclass
class Profile:
    samples: Counter[str] = field(default_factory=Counter)
    unplaced: Counter[str] = field(default_factory=Counter)
    """Samples in no stage, by their innermost frame: where to look next."""
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.samples.values())

    def share(self, stage: str) -> float:
        return self.samples[stage] / self.total if self.total else 0.0


def parse_collapsed(text: str) -> Profile:
    profile = Profile()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        while frames and frames[0].startswith(("process ", "thread ")):
            frames = frames[1:]
        stage = stage_of(frames)
        profile.samples[stage] += int(count)
        if stage == OTHER and frames:
            profile.unplaced[_short(frames[-1])] += int(count)
    return profile


def _short(frame: str) -> str:
    """``func (…/site-packages/pkg/mod.py:12)`` as ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Sampler:
    """``py-spy record`` on one process while the caller runs its load."""

    def __init__(self, pid: int, rate: int = 250) -> None:
        self.pid, self.rate = pid, rate
        self.out = Path(tempfile.mkstemp(prefix="tether-profile-", suffix=".txt")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.error = ""

    def __enter__(self) -> Sampler:
        binary = py_spy()
        if binary is None:
            self.error = "py-spy is not installed (uv sync installs it with the dev group)"
            return self
        self.process = subprocess.Popen(
            [binary, "record", "--pid", str(self.pid), "--rate", str(self.rate),
             "--format", "raw", "--nonblocking", "--threads", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if not self.out.exists() or not self.out.stat().st_size:
            self.error = (err or b"").decode(errors="replace").strip()[-300:] or "no samples"

    def profile(self) -> Profile:
        if self.error:
            return Profile(error=self.error)
        profile = parse_collapsed(self.out.read_text(errors="replace"))
        self.out.unlink(missing_ok=True)
        return profile


@dataclass
class ProfiledServer:
    label: str
    profile: Profile
    cpu_ms: float
    """CPU per request, every thread."""
    main_thread_ms: float
    """CPU per request of the thread running the event loop."""
    rounds: list[float] = field(default_factory=list)
    """CPU per request in each round (``cpu_ms`` is their median), in the servers' turns."""
    at_rate: list[float | None] = field(default_factory=list)
    """CPU per request at the fixed open-loop rate in each round (``--fixed-rate``); None
    for a round the server could not keep pace in."""


COMMON_PATH = "tether-sqlite"
NEW_SESSION_PATHS = ("tether-new-session", "tether-new-session-no-session-budget")
NEW_SESSION_TARGET = 0.6 / 0.46
"""#29: a new session at most 0.6 ms where the common path costs 0.46 ms."""


def mean_over_copies(
    runs: Mapping[str, Sequence[float | None]], groups: Mapping[str, Sequence[str]]
) -> dict[str, list[float | None]]:
    """Per server, each round's mean over its processes (None where any could not keep
    pace: that round is left out of its ratios)."""
    merged: dict[str, list[float | None]] = {}
    for key, names in groups.items():
        merged[key] = []
        for values in zip(*(runs[name] for name in names), strict=True):
            known = [v for v in values if v is not None]
            merged[key].append(statistics.fmean(known) if len(known) == len(values) else None)
    return merged


def _paired(server: ProfiledServer, base: ProfiledServer, at_rate: bool = False) -> str:
    """The median of each round's own ratio (the two measured minutes apart, so the host's
    drift between rounds cancels), and the rounds' range; ``at_rate``: of the phases at the
    fixed rate, leaving out the rounds either could not keep pace in."""
    pairs = zip(
        server.at_rate if at_rate else server.rounds,
        base.at_rate if at_rate else base.rounds,
        strict=False,
    )
    ratios = [a / b for a, b in pairs if a is not None and b]
    if not ratios:
        return ""
    return f"{statistics.median(ratios):.2f} x ({min(ratios):.2f} to {max(ratios):.2f})"


def _at_rate(server: ProfiledServer) -> str:
    kept = [cpu for cpu in server.at_rate if cpu is not None]
    if not kept:
        return "could not keep pace" if server.at_rate else ""
    missed = len(server.at_rate) - len(kept)
    return f"{statistics.median(kept):.3f} ms" + (
        f" ({missed} round(s) overloaded)" if missed else ""
    )


def _to_common_path(servers: dict[str, ProfiledServer], fixed_rate: int) -> list[str]:
    """Rows: each new-session server's CPU against the common path's (#29's target)."""
    common = servers.get(COMMON_PATH)
    if common is None or not common.cpu_ms:
        return []
    new = {key for key in NEW_SESSION_PATHS if key in servers}
    if not new:
        return []
    closed = [
        f"{server.cpu_ms / common.cpu_ms:.2f} x; each round's own {_paired(server, common)}"
        if key in new
        else ""
        for key, server in servers.items()
    ]
    lines = [
        f"| new session to the common path (#29: at most {NEW_SESSION_TARGET:.2f} x) | "
        + " | ".join(closed)
        + " |"
    ]
    if fixed_rate:
        paced = [
            _paired(server, common, at_rate=True) if key in new else ""
            for key, server in servers.items()
        ]
        lines.append(
            f"| the same at {fixed_rate:,} req/s, each round's own | " + " | ".join(paced) + " |"
        )
    return lines


def render(
    servers: dict[str, ProfiledServer], baseline: ProfiledServer | None, fixed_rate: int = 0
) -> list[str]:
    """A Markdown table: per server, CPU ms per request and each stage's share and ms, the
    main thread's part, and the ratios to the bare pass-through (``baseline``); with
    ``fixed_rate``, the CPU per request at that rate too."""
    stages = [stage for stage, _ in STAGES] + [OTHER]
    head = "| stage | " + " | ".join(server.label for server in servers.values()) + " |"
    lines = [head, "|---|" + "---:|" * len(servers)]
    for stage in stages:
        cells = []
        for server in servers.values():
            share = server.profile.share(stage)
            cells.append(f"{share * server.cpu_ms:.3f} ms ({share:.0%})" if share else "")
        if any(cells):
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    totals = [f"**{server.cpu_ms:.3f} ms**" for server in servers.values()]
    lines.append("| **CPU per request** | " + " | ".join(totals) + " |")
    mains = [
        f"{server.main_thread_ms:.3f} ms ({server.main_thread_ms / server.cpu_ms:.0%})"
        for server in servers.values()
    ]
    lines.append("| of which the main thread (the event loop) | " + " | ".join(mains) + " |")
    if fixed_rate:
        paced = [_at_rate(server) for server in servers.values()]
        lines.append(
            f"| CPU per request at {fixed_rate:,} req/s (open loop; median of the rounds) | "
            + " | ".join(paced)
            + " |"
        )
    if baseline is not None and baseline.cpu_ms:
        ratios = [f"{server.cpu_ms / baseline.cpu_ms:.2f} x" for server in servers.values()]
        lines.append("| ratio to the bare pass-through | " + " | ".join(ratios) + " |")
        paired = [_paired(server, baseline) for server in servers.values()]
        if any(paired):
            lines.append(
                "| the same, each round's own (median; lowest to highest) | "
                + " | ".join(paired)
                + " |"
            )
        mains = [
            f"{server.main_thread_ms / baseline.main_thread_ms:.1f} x"
            for server in servers.values()
        ]
        lines.append(
            "| the main thread's ratio to the pass-through's | " + " | ".join(mains) + " |"
        )
    lines += _to_common_path(servers, fixed_rate)
    samples = [f"{server.profile.total:,}" for server in servers.values()]
    lines.append("| py-spy samples | " + " | ".join(samples) + " |")
    for server in servers.values():
        profile = server.profile
        if profile.total and profile.unplaced:
            top = ", ".join(
                f"`{frame}` {count / profile.total:.0%}"
                for frame, count in profile.unplaced.most_common(6)
            )
            lines += ["", f"Largest in *{OTHER}* for {server.label}: {top}."]
    return lines
