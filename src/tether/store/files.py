"""Files tether writes hold its secrets (the master key, the audit trail, sealed keys):
the data directory is private to its owner (0700) and the SQLite database, WAL and
shared-memory files are 0600 (SQLite gives the WAL and SHM the database file's mode)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["private_directory", "private_sqlite_file"]

SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """Create ``path`` (and parents) if needed; ``path`` itself ends up 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would follow the umask) and
    tighten an existing one and its companions."""
    if not path.parent.exists():
        private_directory(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in SQLITE_COMPANIONS:
        companion = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            if companion.stat().st_mode & 0o077:
                companion.chmod(0o600)
