"""The WAL syncer's own process (``tether.store.wal_sync``): ``fdatasync`` of SQLite's WAL
file, outside tether's interpreter, so that waking up for a sync never waits for the
interpreter lock a busy event loop holds.

Run by path with the standard library alone: ``python -I wal_sync_helper.py DB-wal``.
It writes ``r`` once ready, then for every byte it reads it syncs the WAL (one sync for
all the bytes a read returns) and writes back one byte each: ``s`` synced, ``e`` failed.
It exits when its standard input closes (tether stopped, or died), and only then: the
interrupt and terminate signals sent to tether's whole process group (Ctrl-C, a service
manager's stop) are ignored, so commits are synced while tether drains its calls.
"""

from __future__ import annotations

import os
import signal
import sys

READY = b"r"
SYNCED = b"s"
FAILED = b"e"


class WalFile:
    """The WAL open for syncing; opened again when the path names another file (a new
    WAL after the database was closed everywhere), with its directory synced then, as
    SQLite syncs the directory of a journal it creates."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def sync(self) -> None:
        found = os.stat(self._path)
        identity = (found.st_dev, found.st_ino)
        if self._fd is None or identity != self._identity:
            self._reopen(identity)
        assert self._fd is not None
        getattr(os, "fdatasync", os.fsync)(self._fd)

    def _reopen(self, identity: tuple[int, int]) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fd = os.open(self._path, os.O_RDONLY)
        self._identity = identity
        directory = os.open(os.path.dirname(os.path.abspath(self._path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def serve(wal: WalFile, requests: int, answers: int) -> None:
    os.write(answers, READY)
    while asked := os.read(requests, 65536):
        try:
            wal.sync()
            answer = SYNCED
        except OSError:
            answer = FAILED
        _write_all(answers, answer * len(asked))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(WalFile(sys.argv[1]), sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
