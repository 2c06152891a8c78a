"""Group-committed audit writes: ``record()`` returns once the event is durable.

Concurrent callers share one transaction (one fsync), so durability before every
decision costs one commit per batch, not one per request. Every event is normalised
(``tether.audit.normalise``) in its caller before it joins a batch, and a batch the
database rejects is retried caller by caller, so one bad event fails only its own call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tether.audit.appender import AuditAppender, Row
from tether.audit.event import AuditEvent
from tether.audit.normalise import normalised_row
from tether.errors import AuditEventRejected, TetherError
from tether.loop_share import LoopShare

__all__ = ["AuditLog", "AuditUnavailable", "AuditWatcher", "AuditWatchers"]

log = logging.getLogger(__name__)

MAX_BATCH_CALLS = 256
LINGER_SECONDS = 0.02


class AuditUnavailable(TetherError):
    code = "audit_unavailable"


class AuditWatcher(Protocol):
    """Told of every batch once it is durable (or failed): metrics count from here."""

    def audit_written(self, events: Sequence[AuditEvent], seconds: float) -> None: ...

    def audit_failed(self) -> None: ...


class AuditWatchers:
    """Several watchers told in turn (metrics, then span export)."""

    def __init__(self, *watchers: AuditWatcher) -> None:
        self._watchers = watchers

    def audit_written(self, events: Sequence[AuditEvent], seconds: float) -> None:
        for watcher in self._watchers:
            watcher.audit_written(events, seconds)

    def audit_failed(self) -> None:
        for watcher in self._watchers:
            watcher.audit_failed()


@dataclass(slots=True)
class _Pending:
    events: list[AuditEvent]
    rows: list[Row]
    done: asyncio.Future[None]
    urgent: bool


class AuditLog:
    def __init__(
        self,
        appender: AuditAppender,
        linger_seconds: float = LINGER_SECONDS,
        watcher: AuditWatcher | None = None,
    ) -> None:
        self._appender = appender
        self._watcher = watcher
        self._linger = linger_seconds
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._last_failure: str | None = None

    def problem(self) -> str | None:
        """Why events cannot be recorded now (for readiness), or None: the writer is
        running and its last commit, if any, succeeded."""
        if self._writer is None or self._writer.done():
            return "the audit writer is not running"
        return self._last_failure

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def stop(self) -> None:
        """Flush what is queued, then stop the writer."""
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self._appender.close()

    def rows_of(self, events: list[AuditEvent]) -> list[Row]:
        """``events`` normalised for a caller that commits them in its own transaction
        (``append_linked``); it tells ``written_with`` once they are durable."""
        if self._writer is None or self._writer.done():
            raise AuditUnavailable("the audit log is not running; refusing to act unrecorded")
        try:
            return [normalised_row(event) for event in events]
        except Exception as exc:
            log.exception("audit event could not be normalised")
            raise AuditEventRejected(
                f"this request could not be recorded ({type(exc).__name__}); nothing was done"
            ) from exc

    def written_with(self, events: list[AuditEvent]) -> None:
        """Events committed by another write (``rows_of``): watchers count them as ours."""
        self._tell_watcher(events, 0.0)

    async def record(self, event: AuditEvent) -> None:
        """Raise ``AuditUnavailable`` if the event could not be made durable."""
        await self.record_many([event])

    async def record_many(self, events: list[AuditEvent], *, urgent: bool = True) -> None:
        """All or none: the events commit together. Urgent events (decisions) are written
        at once; others (what happened after an effect) may wait up to ``linger_seconds``
        to share the next commit, which halves the commits per proxied request."""
        await (await self.submit(events, urgent=urgent))

    async def submit(
        self, events: list[AuditEvent], *, urgent: bool = True
    ) -> asyncio.Future[None]:
        """``record_many`` for a caller that need not wait for the commit: the events are
        queued (raises now if they cannot be), and the future returned tells once they are
        durable or why they are not."""
        if len(events) == 1:
            rows = self.rows_of(events)
        else:
            share, rows = LoopShare(), []
            for event in events:
                rows.extend(self.rows_of([event]))
                await share.turn()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(events, rows, done, urgent))
        return done

    async def _next_batch(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        while len(batch) < MAX_BATCH_CALLS and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if not any(item.urgent for item in batch):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._linger):
                    batch.append(await self._queue.get())
                while len(batch) < MAX_BATCH_CALLS and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
        return batch

    def _tell_watcher(self, events: list[AuditEvent] | None, seconds: float) -> None:
        """Never lets a watcher's failure stop the writer (that would refuse everything)."""
        if self._watcher is None:
            return
        try:
            if events is None:
                self._watcher.audit_failed()
            else:
                self._watcher.audit_written(events, seconds)
        except Exception:
            log.exception("audit watcher failed")

    async def _write_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Pending]) -> None:
        """One transaction for the batch; if the database rejects a row in it, each
        caller's events are written alone so only the rejected call fails."""
        started = time.perf_counter()
        try:
            await self._appender.append([row for item in batch for row in item.rows])
        except AuditEventRejected as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            for item in batch:
                await self._write([item])
        except Exception as exc:
            if not isinstance(exc, TetherError):
                log.exception("audit write failed")
            detail = exc.message if isinstance(exc, TetherError) else type(exc).__name__
            self._fail(batch, AuditUnavailable(f"the audit log cannot be written: {detail}"))
        else:
            self._last_failure = None
            self._tell_watcher(
                [e for item in batch for e in item.events], time.perf_counter() - started
            )
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)

    def _fail(self, batch: list[_Pending], failure: TetherError) -> None:
        self._tell_watcher(None, 0.0)
        if isinstance(failure, AuditUnavailable):
            self._last_failure = failure.message
        for item in batch:
            if not item.done.done():
                item.done.set_exception(failure)
