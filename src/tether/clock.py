"""Time and ids as the store records them."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

__all__ = ["iso_ms", "new_id", "new_uuid7", "now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _RandomHex:
    """Unpredictable hex drawn from the OS 4 KiB at a time: one system call per 400 ids
    instead of one per id (ids are made on every event of every request). A forked
    process starts a fresh buffer, so two workers never hand out the same digits."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer = b""
        self._at = 0

    def take(self, count: int) -> str:
        with self._lock:
            if self._at + count > len(self._buffer):
                self._buffer, self._at = os.urandom(self.CHUNK), 0
            start, self._at = self._at, self._at + count
            taken = self._buffer[start : start + count]
        return taken.hex()


_random_hex = _RandomHex()


def new_id() -> str:
    """A 32-hex-digit id whose first 12 digits are the millisecond time: sortable by age."""
    return f"{now_ms():012x}{_random_hex.take(10)}"


_VARIANT = "89ab89ab89ab89ab"
"""The variant digit of an RFC 9562 UUID is 8, 9, a or b: a random hex digit mapped on it."""


def new_uuid7() -> str:
    """A time-ordered (version 7, RFC 9562) UUID: the millisecond time, then 74 random
    bits. Rows keyed by it are added at the end of their indexes rather than at random
    places in them, so a commit writes fewer pages (SQLite's WAL, PostgreSQL's)."""
    t = f"{now_ms():012x}"
    h = _random_hex.take(10)
    variant = _VARIANT[int(h[3], 16)]
    return f"{t[:8]}-{t[8:]}-7{h[:3]}-{variant}{h[4:7]}-{h[7:19]}"


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
