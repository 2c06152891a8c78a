"""One server per SQLite database: a second ``tether up`` on the same file is refused
before it touches anything (its in-memory caches would never see the first's changes)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from tether.errors import ConfigError

__all__ = ["hold_sqlite_database", "sqlite_lock_path"]


def sqlite_lock_path(database_url: str) -> Path | None:
    """The lock file beside a SQLite database; None for PostgreSQL or an in-memory one."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database + ".lock")


@contextmanager
def hold_sqlite_database(database_url: str) -> Iterator[None]:
    """Held for the server's lifetime; the kernel releases it if the process dies."""
    path = sqlite_lock_path(database_url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"another tether (pid {holder}) is already running on {path.with_suffix('')}: "
                "stop it first; several servers need PostgreSQL (TETHER_DATABASE_URL)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
