"""Time and ids as the store records them."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

__all__ = ["iso_ms", "new_id", "now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A 32-hex-digit id whose first 12 digits are the millisecond time: sortable by age."""
    return f"{now_ms():012x}{os.urandom(10).hex()}"


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
