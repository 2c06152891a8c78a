"""The run as Markdown: a summary table, the targets met or not, latency at each rate, the
closed-loop figures, what each server was, and how it was measured."""

from __future__ import annotations

import math
from dataclasses import dataclass

from comparison.load import Phase
from comparison.results import Run, ServerResult

CLIENT_BOUND = 0.9
"""Share of a core the load generator used above which a figure is marked as its limit."""


@dataclass(frozen=True)
class Goal:
    text: str
    measured: str
    met: bool | None
    """None: not measured in this run."""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


def _num(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def _client_bound(phase: Phase) -> str:
    return "†" if phase.elapsed and phase.client_cpu / phase.elapsed >= CLIENT_BOUND else ""


def _cpu(phase: Phase | None) -> str:
    if phase is None or not phase.ok:
        return "—"
    text = _num(phase.cpu_ms_per_request())
    if "postgres" in phase.cpu:
        text += f" (+{_num(phase.cpu_ms_per_request('postgres'))} in PostgreSQL)"
    return text


def _throughput(phase: Phase | None) -> str:
    if phase is None or not phase.ok:
        return "—" if phase is None else f"failed ({phase.overloaded or phase.error_sample})"
    return f"{phase.throughput:,.0f}{_client_bound(phase)}"


def latency_cell(phase: Phase | None, base: Phase | None) -> str:
    """``+P50 / +P95 / +P99`` over the same phase sent to the upstream directly (absolute
    for the upstream itself), or why there is no latency: the rate was not sustained."""
    if phase is None:
        return "—"
    if phase.skipped:
        return f"overloaded ({phase.skipped})"
    if phase.overloaded:
        return f"overloaded ({phase.overloaded})"
    if base is None or base is phase or not base.measured:
        return " / ".join(_num(phase.pct(q)) for q in (50, 95, 99)) + (
            " (baseline)" if base is phase else ""
        )
    return " / ".join(f"{phase.pct(q) - base.pct(q):+.2f}" for q in (50, 95, 99))


def added(server: ServerResult, direct: ServerResult | None, stream: bool, rate: int) -> str:
    """The latency cell of ``server`` at an open-loop ``rate``, over the upstream's."""
    base = direct.phase("open", stream, rate) if direct is not None else None
    return latency_cell(server.phase("open", stream, rate), base)


def goals(run: Run) -> list[Goal]:
    """The targets of issue #17, each against what this run measured."""
    found: list[Goal] = []
    sqlite, pg = run.server("tether-sqlite"), run.server("tether-pg")
    fresh, litellm, direct = (
        run.server("tether-new-session"),
        run.server("litellm"),
        run.server("direct"),
    )

    for server, floor, name in ((sqlite, 2000, "SQLite"), (pg, 1000, "PostgreSQL")):
        best = server.max_throughput() if server else None
        found.append(Goal(
            f"tether, {name}: ≥ {floor:,} req/s",
            "—" if best is None else f"{best:,.0f} req/s",
            None if best is None else best >= floor,
        ))  # fmt: skip
    for server, name in ((sqlite, "SQLite"), (pg, "PostgreSQL")):
        phase = server.phase("closed", False) if server else None
        cpu = phase.cpu_ms_per_request() if phase and phase.ok else math.nan
        found.append(Goal(
            f"tether, {name}: ≤ 0.5 ms CPU per request at saturation",
            _cpu(phase) + (" ms" if phase and phase.ok else ""),
            None if math.isnan(cpu) else cpu <= 0.5,
        ))  # fmt: skip
    phase = fresh.phase("closed", False) if fresh else None
    cpu = phase.cpu_ms_per_request() if phase and phase.ok else math.nan
    found.append(Goal(
        "a new session (no session header): ≤ 1 ms CPU per request",
        _cpu(phase) + (" ms" if phase and phase.ok else ""),
        None if math.isnan(cpu) else cpu <= 1.0,
    ))  # fmt: skip
    for server, name in ((sqlite, "SQLite"), (pg, "PostgreSQL")):
        found.append(_added_goal(server, direct, name))
    best = sqlite.max_throughput() if sqlite else None
    theirs = litellm.max_throughput() if litellm else None
    ratio = best / theirs if best and theirs else None
    found.append(Goal(
        "tether (SQLite) ≥ 25× LiteLLM's throughput",  # noqa: RUF001
        "—" if ratio is None else f"{ratio:,.1f}× ({best:,.0f} vs {theirs:,.0f} req/s)",  # noqa: RUF001
        None if ratio is None else ratio >= 25,
    ))  # fmt: skip
    return found


def _added_goal(server: ServerResult | None, direct: ServerResult | None, name: str) -> Goal:
    text = f"tether, {name}: added ≤ 1 ms P50 / ≤ 3 ms P99 at 300 req/s, JSON and streaming"
    if server is None or direct is None:
        return Goal(text, "—", None)
    parts, met = [], True
    for stream in (False, True):
        phase, base = server.phase("open", stream, 300), direct.phase("open", stream, 300)
        label = "streaming" if stream else "JSON"
        if phase is None or base is None or not base.measured:
            return Goal(text, "—", None)
        if not phase.measured:
            parts.append(f"{label}: overloaded")
            met = False
            continue
        p50, p99 = phase.pct(50) - base.pct(50), phase.pct(99) - base.pct(99)
        parts.append(f"{label}: {p50:+.2f} / {p99:+.2f} ms")
        met = met and p50 <= 1 and p99 <= 3
    return Goal(text, "; ".join(parts), met)


BUSY = 0.5
"""A one-minute load average at the start above this: the machine was not quiet."""
STOLEN = 0.05
"""A hypervisor that took this share of the CPU time asked for: the host was not quiet."""


def busy_warning(run: Run) -> list[str]:
    try:
        load = float(run.machine.load_before.split()[0])
    except (IndexError, ValueError):
        load = 0.0
    warnings = []
    if load >= BUSY:
        warnings += [
            f"**The machine was not quiet** (load average {load:.2f} over the minute before "
            "the run): other work competed for the cores and the disk, so these figures are "
            "noisy. Re-run the command on an idle machine before quoting them.",
            "",
        ]
    stolen = run.machine.stolen
    if stolen is not None and stolen >= STOLEN:
        warnings += [
            f"**The host was not quiet**: the hypervisor gave {stolen:.0%} of the CPU time "
            "this machine asked for to other guests during the run (`steal` in `/proc/stat`). "
            "Every process here, the upstream and the load generator included, stood still "
            "meanwhile: latency tails and throughput are the host's as much as the servers'. "
            "Re-run on a quiet host before quoting them.",
            "",
        ]
    return warnings


def stolen_clause(stolen: float | None) -> str:
    if stolen is None:
        return ""
    return f"; the hypervisor took {stolen:.0%} of the CPU time asked for (steal)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(run: Run) -> str:
    """The generated part of docs/benchmarks.md (starts at its ``##`` heading)."""
    m = run.machine
    direct = run.server("direct")
    measured = [s for s in run.servers if not s.unavailable]
    out = [
        "## Gateway side by side",
        "",
        f"{run.software or 'tether'}, measured {run.started:%Y-%m-%d %H:%M} UTC on {m.cores} "
        f"cores ({m.cpu}), {m.python}, {m.system}; a 4 KiB write + fsync takes "
        f"{_num(m.fsync_ms)} ms where the SQLite databases are (durable commits wait for it); "
        f"load average {m.load_before} before and {m.load_after} after"
        f"{stolen_clause(m.stolen)} ({run.minutes:.1f} minutes, {run.mode} run: "
        f"{run.seconds:g} s a phase). Reproduce:",
        "",
        "```sh",
        run.command,
        "```",
        "",
        *busy_warning(run),
        "### Summary",
        "",
        "Added latency is over the same requests sent straight to the upstream (P50 / P95 / "
        "P99, ms); throughput and CPU are from the closed loop; CPU is the server "
        "process's, all threads; memory is its resident set (idle after set-up → peak).",
        "",
    ]
    rows = []
    for s in measured:
        closed_json, closed_stream = s.phase("closed", False), s.phase("closed", True)
        slow = s.phase("open", False, min(run.rates))
        rows.append([
            s.label,
            _throughput(closed_json),
            _throughput(closed_stream),
            _cpu(closed_json),
            _cpu(slow),
            f"{s.rss_idle_mb:,.0f} → {s.rss_peak_mb:,.0f}",
            added(s, direct, False, 300),
            added(s, direct, True, 300),
        ])  # fmt: skip
    out += _table(
        ["server", "max req/s", "max req/s, streaming", "CPU ms/req at max",
         f"CPU ms/req at {min(run.rates)} req/s", "RSS MiB",
         "added at 300 req/s", "added at 300 req/s, streaming"],
        rows,
    )  # fmt: skip
    out += ["", "### Targets (issue #17)", ""]
    out += _table(["target", "measured", ""], [[g.text, g.measured, g.verdict] for g in goals(run)])
    out += ["", "### Added latency at each open-loop rate (P50 / P95 / P99, ms)", ""]
    modes = [(False, rate) for rate in run.rates] + [(True, 300)]

    rows = [[s.label] + [added(s, direct, st, rate) for st, rate in modes] for s in measured]
    out += _table(
        ["server"] + [f"{r:,} req/s{', streaming' if st else ''}" for st, r in modes], rows
    )
    out += ["", f"### Closed loop ({run.concurrency} clients)", ""]
    rows = []
    for s in measured:
        for stream in (False, True):
            p = s.phase("closed", stream)
            if p is None:
                continue
            rows.append([
                s.label, "streaming" if stream else "JSON", _throughput(p),
                " / ".join(_num(p.pct(q)) for q in (50, 95, 99)), _cpu(p),
                f"{p.errors:,}" + (f" ({p.error_sample})" if p.error_sample else ""),
            ])  # fmt: skip
    out += _table(
        ["server", "", "req/s", "latency P50 / P95 / P99 ms", "CPU ms/req", "errors"], rows
    )
    out += ["", "### The servers", ""]
    out += [f"- {note}." for note in run.notes]
    for s in run.servers:
        if s.unavailable:
            out.append(f"- **{s.label}: not measured** — {s.unavailable}")
            continue
        details = s.notes + ([s.check] if s.check else [])
        out.append(f"- **{s.label}**: " + ("; ".join(details) or "as above") + ".")
    out += ["", *METHOD]
    if any(_client_bound(p) for s in measured for p in s.phases):
        out.append(
            "- † the load generator used most of a core in that phase: the figure is its "
            "limit on this machine as much as the server's."
        )
    return "\n".join(out) + "\n"


METHOD = [
    "How it is measured:",
    "",
    "- One load generator, in the harness's own process (uvloop, a minimal keep-alive "
    "HTTP/1.1 client), apart from every server measured; every server is started on this "
    "machine in front of the same bundled fake Anthropic API and stopped at the end.",
    "- Every request is a different one-message conversation (so tether's repeat guard stays "
    "on without tripping, and a client without a session header starts a new session every "
    "call); `max_tokens` 64, a 7-token answer, streamed in 3 deltas when streaming.",
    "- Closed loop: the clients send their next request as soon as the last is answered (the "
    "maximum throughput). Open loop: requests are sent on a fixed schedule whatever the "
    "answers, and latency counts from the scheduled time, so falling behind shows.",
    "- A rate is **overloaded** (no latency given) when the backlog passes half a second of "
    "requests, when answers are still missing a grace period after the last request was due, "
    "when the answers come at under 90 % of the rate (from the first request to the last "
    "answer, less one median latency), or when more than 1 % fail; a rate above a "
    "server's closed-loop maximum, or above a rate it already could not sustain, is not run.",
    "- CPU per request: user + system time of the server's processes (every thread, and any "
    "child process) from `/proc`, over the measured window, divided by the requests answered.",
    "- Each server is first loaded for one closed-loop phase that is not measured (a new "
    "server's first seconds cost a quarter more CPU than the ones after; the new-session "
    "path for as many phases as it takes to start more sessions than tether keeps in "
    "memory, so it is measured evicting them), and each phase "
    "starts with a warm-up (connections opened, a few requests answered) that is not "
    "measured either.",
]
