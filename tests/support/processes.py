"""Processes as /proc shows them: a server's children, and whether one still runs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = [
    "alive",
    "catches",
    "children",
    "command",
    "described",
    "kill_if_alive",
    "wait_until_gone",
]


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent, …"""
    return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()


def command(pid: int) -> str:
    """The process's command line, its arguments joined by spaces ("" once it is gone)."""
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running or sleeping: neither gone nor a zombie waiting for its parent."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler of its own for ``signum`` (``SigCgt``)."""
    with contextlib.suppress(OSError):
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def kill_if_alive(pid: int, running: str) -> None:
    """SIGKILL ``pid`` if it still runs ``running`` (a test's leftover, not a process
    that took its number since)."""
    if alive(pid) and running in command(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def described(pids: list[int]) -> str:
    """Each process's state, parent and command, for a failing test to show."""
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            state, parent = _stat(pid)[:2]
            lines.append(f"{pid} ({state}, parent {parent}): {command(pid)[:80]}")
    return "; ".join(lines)


def wait_until_gone(pids: list[int], seconds: float, outlived: str) -> None:
    """Returns once none of ``pids`` runs; fails after ``seconds`` naming those that do,
    as having ``outlived`` something."""
    deadline = time.monotonic() + seconds
    while left := [pid for pid in pids if alive(pid)]:
        assert time.monotonic() < deadline, f"{described(left)} outlived {outlived}"
        time.sleep(0.1)
