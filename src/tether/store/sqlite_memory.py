"""How much memory SQLite's library holds in this process (page caches, prepared
statements, schemas of every connection): allocations Python's own accounting does not
see, read from ``sqlite3_memory_used`` of the library the ``sqlite3`` module runs on."""

from __future__ import annotations

import _sqlite3
import ctypes
import functools
from collections.abc import Callable

__all__ = ["sqlite_memory_used"]


@functools.cache
def _reader() -> Callable[[], int] | None:
    try:
        used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (OSError, AttributeError):
        return None
    used.restype = ctypes.c_int64
    used.argtypes = []
    return used


def sqlite_memory_used() -> int | None:
    """Bytes SQLite has allocated and not freed; None where the symbol cannot be found (0
    from a SQLite built to keep no memory statistics)."""
    read = _reader()
    return None if read is None else int(read())
