"""Memory counted once per physical page (``bench/comparison/resident_once.py``), as the
soak reports tether's process tree: a forked child shares its parent's pages until either
writes them, so the two together hold far less than their RSS summed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from comparison.processes import resident_once_mb, rss_mb

HOLDER = """
import os, sys, time
block = bytearray(os.urandom(64 * 2**20))
child = os.fork()
if child == 0:
    if sys.argv[1] == "own":
        for at in range(0, len(block), 4096):
            block[at] ^= 1
    print("ready", flush=True)
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def _holder(child_writes: bool) -> tuple[subprocess.Popen[str], list[int]]:
    """A process holding 64 MiB of its own, and its forked child (which writes every page
    of that block when ``child_writes``, so the two then hold one copy each)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "own" if child_writes else "share"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
        if children:
            return holder, [holder.pid, int(children[0])]
        time.sleep(0.05)
    raise AssertionError("the child did not appear")


def _stop(holder: subprocess.Popen[str], pids: list[int]) -> None:
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    holder.wait(10)
    if holder.stdout is not None:
        holder.stdout.close()


@pytest.mark.parametrize("child_writes", [False, True])
def test_shared_pages_count_once_and_copies_twice(child_writes: bool) -> None:
    holder, pids = _holder(child_writes)
    try:
        once = resident_once_mb(pids)
        if once is None:
            pytest.skip("page frame numbers are hidden here (they need CAP_SYS_ADMIN)")
        summed = rss_mb(pids)
        assert summed > 128, "both hold the 64 MiB block in their RSS"
        alone = max(rss_mb([pid]) for pid in pids)
        if child_writes:
            assert once > alone + 56, "the child's written copy is memory of its own"
        else:
            assert once < alone + 24, "the shared block is counted once"
        assert once <= summed
    finally:
        _stop(holder, pids)
