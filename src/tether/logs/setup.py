"""Logging for ``tether up``: level and format from the environment (``TETHER_LOG_LEVEL``,
``TETHER_LOG_FORMAT=text|json``), to stderr."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any

from tether.logs.formatters import JsonFormatter, LineFormatter, TextFormatter

__all__ = ["BatchedStderrHandler", "configure_logging", "direct_handler"]

FLUSH_SECONDS = 0.2
DEFAULT_BUFFER_BYTES = 4 << 20
CLOSE_WAIT_SECONDS = 2.0


class BatchedStderrHandler(logging.Handler):
    """stderr written in batches, never by the thread that logs.

    A line per request written (and flushed) on its own cost a system call and a GIL
    hand-off each, 12-20 % of a gated request's CPU (measured). And a write to a stderr
    nobody reads (a stalled log collector, a paused pipe, Docker's blocking log mode)
    blocks: on the event loop it froze every request, the kill switch's included, after
    about 800 access lines. So ``emit`` only adds the line to a buffer; the ``log-flush``
    thread writes it out within ``FLUSH_SECONDS`` (a warning or worse at once) and is the
    only one that ever waits for stderr. Past ``buffer_bytes`` unwritten (counted in
    characters: JSON lines are ASCII), lines are dropped and counted, and the count is
    written once stderr takes lines again."""

    def __init__(self, buffer_bytes: int = DEFAULT_BUFFER_BYTES, fd: int | None = None) -> None:
        super().__init__()
        self._fd = sys.stderr.fileno() if fd is None else fd
        self._buffer_bytes = buffer_bytes
        self._pending: list[str] = []
        self._pending_bytes = 0
        self.dropped = 0
        self._start_flusher()
        os.register_at_fork(after_in_child=self._after_fork)

    def _start_flusher(self) -> None:
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="log-flush", daemon=True)
        self._flusher.start()

    def _after_fork(self) -> None:
        """A forked worker (``tether up --workers``) has no flusher thread: it gets its own,
        and the lines its parent had not written yet stay the parent's to write."""
        if self._stop.is_set():
            return
        self._pending, self._pending_bytes, self.dropped = [], 0, 0
        self._start_flusher()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._add(line, record.levelno)

    def emit_line(self, name: str, levelno: int, message: str, fields: dict[str, Any]) -> None:
        """What ``emit`` does for a record with these, without making one: for callers
        that ``direct_handler`` pointed here."""
        assert isinstance(self.formatter, LineFormatter)
        self._add(self.formatter.line(name, levelno, message, time.time(), fields), levelno)

    def _add(self, line: str, levelno: int) -> None:
        line += "\n"
        with self._pending_lock:
            if self._pending_bytes + len(line) > self._buffer_bytes:
                self.dropped += 1
                return
            self._pending.append(line)
            self._pending_bytes += len(line)
        if levelno >= logging.WARNING:
            self._wake.set()

    def flush(self) -> None:
        """Ask the flusher to write now; returns at once (see ``close`` to wait)."""
        self._wake.set()

    def _flush_often(self) -> None:
        """Until closed; a failed write loses its lines, never the thread."""
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            with contextlib.suppress(Exception):
                self._write_pending()
        with contextlib.suppress(Exception):
            self._write_pending()

    def _write_pending(self) -> None:
        with self._pending_lock:
            lines, self._pending, self._pending_bytes = self._pending, [], 0
            dropped, self.dropped = self.dropped, 0
        if dropped:
            lines.insert(0, _dropped_line(dropped))
        if lines:
            _write_all(self._fd, "".join(lines).encode("utf-8", "backslashreplace"))

    def close(self) -> None:
        """Write what is buffered, waiting at most ``CLOSE_WAIT_SECONDS`` for stderr."""
        self._stop.set()
        self._wake.set()
        if self._flusher.is_alive() and self._flusher is not threading.current_thread():
            self._flusher.join(CLOSE_WAIT_SECONDS)
        super().close()


def direct_handler(logger: logging.Logger, level: int) -> BatchedStderrHandler | None:
    """The one handler a record from ``logger`` at ``level`` would reach, when that is
    tether's own (with one of its formatters) and nothing else would see the record (no
    filter, no other handler, the level enabled): a line can be handed to it without a
    ``LogRecord`` (an access line costs a third as much). None otherwise (a test's log
    capture, an operator's handler): then log as usual."""
    if not logger.isEnabledFor(level):
        return None
    found: BatchedStderrHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not BatchedStderrHandler
                or handler.filters
                or level < handler.level
                or not isinstance(handler.formatter, LineFormatter)
            ):
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


def _dropped_line(count: int) -> str:
    return (
        f"tether: {count} log lines were dropped: stderr was not read fast enough "
        "(TETHER_LOG_BUFFER_BYTES bounds what waits for it)\n"
    )


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data``, however the descriptor takes it (a non-blocking pipe shared with a
    parent included); a closed stderr loses the lines, as it would any writer's."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return


def _gather_only_what_is_shown() -> None:
    """Neither format shows the caller's line, thread or process: a record stops finding
    them (the logging HOWTO's "Optimization"; 1.5 µs of a 6.9 µs access line, measured)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(level: str, fmt: str, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
    """``level``, ``fmt`` and ``buffer_bytes`` as ``Settings`` validated them."""
    sys.stderr.flush()
    handler = BatchedStderrHandler(buffer_bytes)
    if fmt == "json":
        formatter: LineFormatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = TextFormatter()
    handler.setFormatter(formatter)
    _gather_only_what_is_shown()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
