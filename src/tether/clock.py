"""Time and ids as the store records them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

__all__ = ["iso_ms", "new_id", "new_uuid7", "now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _RandomHex:
    """Unpredictable hex drawn from the OS 4 KiB at a time: one system call per 400 ids
    instead of one per id (ids are made on every event of every request). The digits are
    cut up front and handed out by an iterator, whose ``next`` the GIL keeps atomic: no
    lock on the hot path (two threads refilling at once each draw their own fresh bytes).
    A forked process starts a fresh buffer, so two workers never hand out the same digits."""

    CHUNK = 4096
    PIECE = 10
    """Bytes of randomness in each piece handed out (20 hex digits)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._pieces: Iterator[str] = iter(())

    def take(self) -> str:
        """``PIECE`` random bytes as hex; never the same piece twice."""
        for piece in self._pieces:
            return piece
        digits = os.urandom(self.CHUNK).hex()
        step = 2 * self.PIECE
        pieces = iter([digits[at : at + step] for at in range(0, len(digits) - step + 1, step)])
        self._pieces = pieces
        return next(pieces)


_random_hex = _RandomHex()


def new_id() -> str:
    """A 32-hex-digit id whose first 12 digits are the millisecond time: sortable by age."""
    return f"{now_ms():012x}{_random_hex.take()}"


_VARIANT = "89ab89ab89ab89ab"
"""The variant digit of an RFC 9562 UUID is 8, 9, a or b: a random hex digit mapped on it."""


def new_uuid7() -> str:
    """A time-ordered (version 7, RFC 9562) UUID: the millisecond time, then 74 random
    bits. Rows keyed by it are added at the end of their indexes rather than at random
    places in them, so a commit writes fewer pages (SQLite's WAL, PostgreSQL's)."""
    t = f"{now_ms():012x}"
    h = _random_hex.take()
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
