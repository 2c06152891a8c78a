"""The servers as child processes: started with their output in a log file, asked to stop
(then killed) at the end whatever happened, and measured from /proc (CPU of every thread,
resident memory) together with any process they started themselves."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from harness import cpu_seconds as process_cpu_seconds
from harness import wait_http

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM if the harness dies, so no
    server outlives a killed run."""
    with suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Server:
    """One started child process (the leader of its own process group)."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.log = name, log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 8) -> str:
        """The end of its output, for saying why it did not start."""
        with suppress(OSError):
            text = self.log.read_text(errors="replace").strip().splitlines()
            return "\n".join(text[-lines:])
        return ""

    def wait_ready(self, url: str, timeout: float) -> None:
        try:
            wait_http(url, timeout, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{self.name} {exc}:\n{self.tail()}") from None

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to its process group, SIGKILL if it is still there after ``timeout``."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Children that outlived the leader are still in its group.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log_file.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                queue.extend(int(child) for child in children.split())
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes, all their threads."""
    total = 0.0
    for pid in pids:
        with suppress(OSError):
            total += process_cpu_seconds(pid)
    return total


def main_thread_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by each process's main thread (the event loop's,
    in an asyncio server): what the other threads (a database writer) cannot take off it."""
    total = 0.0
    for pid in pids:
        with suppress(OSError):
            total += process_cpu_seconds(pid, thread=pid)
    return total


def resident_once_mb(pids: list[int]) -> float | None:
    """The processes' memory with each shared page counted once (``resident_once.py``,
    run in a child process); None where the page frames are hidden from us."""
    measured = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("resident_once.py")), *map(str, pids)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return float(measured.stdout) if measured.stdout.strip() else None


def rss_mb(pids: list[int]) -> float:
    """The sum of the processes' RSS: a page they share counts once in each."""
    total_kb = 0
    for pid in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def wait_idle(pids: list[int], timeout: float = 15, busy: float = 0.1) -> None:
    """Until these processes use under ``busy`` of a core (the previous phase's backlog is
    gone), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pids)
        if now - before < busy * 0.25:
            return
        before = now


def title(pid: int) -> str:
    """A process's command line, which PostgreSQL sets to what the process is doing."""
    with suppress(OSError):
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    return ""


class ChangingTreeCpu:
    """CPU used by the processes below ``root`` that ``keep`` (by their title) since this
    started: sampled in a thread, so processes that exit between two reads (connections a
    pool closes) still count, and processes started later count from their start."""

    def __init__(self, root: int, keep: Callable[[str], bool], interval: float = 0.1) -> None:
        self.root, self.keep, self.interval = root, keep, interval
        self._used: dict[int, tuple[float, float]] = {}  # pid: (CPU when first seen, last)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True, name="pg-cpu")
        self._thread.start()

    def _sample(self, first: bool = False) -> None:
        for pid in process_tree(self.root)[1:]:
            if not self.keep(title(pid)):
                continue
            try:
                cpu = process_cpu_seconds(pid)
            except OSError:
                continue
            with self._lock:
                start = self._used.get(pid, (cpu if first else 0.0, 0.0))[0]
                self._used[pid] = (start, cpu)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def __call__(self) -> float:
        self._sample()
        with self._lock:
            return sum(last - start for start, last in self._used.values())

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
