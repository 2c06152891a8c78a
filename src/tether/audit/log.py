"""Group-committed audit writes: ``record()`` returns once the event is durable.

Concurrent callers share one transaction (one fsync), so durability before every
decision costs one commit per batch, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether.audit.event import AuditEvent
from tether.errors import TetherError
from tether.store.audit import AuditStore

__all__ = ["AuditLog", "AuditUnavailable"]

log = logging.getLogger(__name__)

MAX_BATCH = 512


class AuditUnavailable(TetherError):
    code = "audit_unavailable"


class AuditLog:
    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._queue: asyncio.Queue[tuple[AuditEvent, asyncio.Future[None]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def stop(self) -> None:
        """Flush what is queued, then stop the writer."""
        if self._writer is None:
            return
        await self._queue.join()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def record(self, event: AuditEvent) -> None:
        """Raise ``AuditUnavailable`` if the event could not be made durable."""
        if self._writer is None or self._writer.done():
            raise AuditUnavailable("the audit log is not running; refusing to act unrecorded")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, done))
        await done

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._store.append([event.as_row() for event, _ in batch])
            except Exception as exc:
                if not isinstance(exc, TetherError):
                    log.exception("audit write failed")
                detail = exc.message if isinstance(exc, TetherError) else type(exc).__name__
                failure = AuditUnavailable(f"the audit log cannot be written: {detail}")
                for _, done in batch:
                    if not done.done():
                        done.set_exception(failure)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
            finally:
                for _ in batch:
                    self._queue.task_done()
