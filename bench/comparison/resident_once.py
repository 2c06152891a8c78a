"""The memory a set of processes holds, each physical page counted once.

A sum of RSS counts every shared library (and every page a spawned or forked child shares
with its parent) once per process that maps it; the union of the page frames the
processes have resident is what they take from the machine together. Frame numbers are
read from ``/proc/PID/pagemap``, which shows them only with CAP_SYS_ADMIN.

Run as a script (``resident_once.py PID...``, printing MiB, or nothing when the frames are
hidden) so the measuring process's own interpreter is not busy for the ~50 ms it takes:
the soak samples it from its load generator.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from contextlib import suppress
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
FRAME_BITS = (1 << 55) - 1
PRESENT = re.compile(rb"[\x80-\xff]")
"""An entry's top byte (little-endian) with bit 63, "present", set."""


def resident_frames(pid: int) -> set[int]:
    frames: set[int] = set()
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            span, _, rest = line.partition(" ")
            if rest.endswith("[vsyscall]"):
                continue
            start, end = (int(part, 16) for part in span.split("-"))
            pagemap.seek(start // PAGE_BYTES * 8)
            entries = pagemap.read((end - start) // PAGE_BYTES * 8)
            for match in PRESENT.finditer(entries[7::8]):
                (entry,) = struct.unpack_from("<Q", entries, match.start() * 8)
                frames.add(entry & FRAME_BITS)
    return frames


def resident_once_mb(pids: list[int]) -> float | None:
    """None when the frame numbers are hidden (every present entry reads as frame 0)."""
    frames: set[int] = set()
    for pid in pids:
        with suppress(OSError):
            frames |= resident_frames(pid)
    frames.discard(0)
    return len(frames) * PAGE_BYTES / 2**20 if frames else None


if __name__ == "__main__":
    measured = resident_once_mb([int(pid) for pid in sys.argv[1:]])
    if measured is not None:
        print(f"{measured:.1f}")
