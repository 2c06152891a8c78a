"""Message batches a kill must reach: a batch runs upstream for hours after it was
allowed, so when its session or agent is stopped (or its project paused), tether asks
upstream to cancel it (``POST /v1/messages/batches/{id}/cancel``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tether.errors import TetherError
from tether.identity.directory import Directory
from tether.kill.switch import KillSwitch
from tether.records.fleet import Project
from tether.records.message_batches import BatchRecord
from tether.records.verdicts import Deny
from tether.store.changes import Change
from tether.store.message_batches import MessageBatchStore
from tether.web.background import while_serving

__all__ = ["BatchCanceller"]

log = logging.getLogger(__name__)

STOPPING_KINDS = frozenset({"session", "agent", "project", "control"})
"""The changes that can stop a batch's session, agent or project (a kill, a stop or a
revocation, a pause, pause-all); the others (an approval joined, a budget moved) cannot,
and reading every open batch on each of them cost a query per refused deletion."""

CancelUpstream = Callable[[BatchRecord, Project], Awaitable[bool]]
"""Asks upstream to cancel a batch with its project's key; True when upstream agreed."""

RETRY_SECONDS = 2.0
"""How soon a batch a kill could not check or cancel (the store or upstream failed) is
tried again; each further failure doubles the wait, up to ``MAX_RETRY_SECONDS``."""
MAX_RETRY_SECONDS = 300.0


@dataclass(slots=True)
class _Owed:
    """A check or cancel to try again: when (``loop.time()``), the wait after that, and
    whether the batch's session is to be read from the store (it is the one that changed)."""

    due: float
    wait: float
    read_session: bool = False


class BatchCanceller:
    def __init__(
        self,
        switch: KillSwitch,
        store: MessageBatchStore,
        directory: Directory,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._switch = switch
        self._directory = directory
        self._store = store
        self._retry_seconds = retry_seconds
        self.cancel_upstream: CancelUpstream | None = None
        """Set by the Messages door, which knows the project's upstream and key."""
        self._owed: dict[str, _Owed] = {}
        """Batches a kill could not check or cancel, by id."""
        self._unread: dict[str | None, _Owed] = {}
        """Kills (the session that changed, None for any other stop) for which the open
        batches could not be read at all."""

    async def apply(self, change: Change) -> None:
        if change.kind in STOPPING_KINDS:
            await self.enforce(change.ref if change.kind == "session" else None)

    async def enforce(self, changed_session: str | None = None) -> int:
        """Cancel every open batch whose session, agent or project is stopped now. The
        session that changed is read from the store when no call holds it here (its batch
        may have outlived every call, and this process). A batch not checked or not
        canceled (the store or upstream failed) is owed, and tried again
        (``RETRY_SECONDS``, then less often) until it is: a batch runs upstream for hours,
        and no later change may come to stop it."""
        if self.cancel_upstream is None:
            return 0
        try:
            batches = await self._store.open_batches()
        except TetherError as exc:
            log.error("open message batches not read; none canceled: %s", exc.message)
            self._owe(self._unread, changed_session)
            return 0
        self._unread.pop(changed_session, None)
        canceled = 0
        for batch in batches:
            read_session = changed_session is not None and batch.session_id == changed_session
            canceled += await self._enforce_on(self.cancel_upstream, batch, read_session)
        return canceled

    def lifetime(self, _app: Any) -> AsyncIterator[None]:
        """Try owed batches again while the server runs (an aiohttp cleanup context)."""
        return while_serving("owed message batch cancels", self._retry_owed)

    async def _retry_owed(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds / 4)
            try:
                await self._retry_due(asyncio.get_running_loop().time())
            except Exception:
                log.exception("owed message batch cancels failed again")

    async def _retry_due(self, now: float) -> None:
        for changed_session, owed in list(self._unread.items()):
            if owed.due <= now:
                await self.enforce(changed_session)
        due = {batch_id: o for batch_id, o in self._owed.items() if o.due <= now}
        if not due or self.cancel_upstream is None:
            return
        try:
            batches = {batch.id: batch for batch in await self._store.open_batches()}
        except TetherError as exc:
            log.error("open message batches not read again: %s", exc.message)
            for batch_id, owed in due.items():
                self._owe(self._owed, batch_id, owed.read_session)
            return
        for batch_id, owed in due.items():
            batch = batches.get(batch_id)
            if batch is None:
                self._owed.pop(batch_id, None)
                continue
            await self._enforce_on(self.cancel_upstream, batch, owed.read_session)

    async def _enforce_on(
        self, cancel_upstream: CancelUpstream, batch: BatchRecord, read_session: bool
    ) -> int:
        """1 if the batch was canceled now; a batch that could not be checked or canceled
        is owed, one checked and left running (or canceled) is not."""
        project = self._directory.project(batch.project_id)
        try:
            verdict = await self._stop_reason(batch, read_session)
            if verdict is None or project is None:
                self._owed.pop(batch.id, None)
                return 0
            if await cancel_upstream(batch, project):
                await self._store.mark_canceled(batch.id)
                self._owed.pop(batch.id, None)
                log.info("message batch %s canceled: %s", batch.id, verdict.reason)
                return 1
            log.error("message batch %s: upstream did not cancel it now", batch.id)
        except TetherError as exc:
            log.error("message batch %s not checked or canceled now: %s", batch.id, exc.message)
        except Exception:
            log.exception("canceling message batch %s failed", batch.id)
        self._owe(self._owed, batch.id, read_session)
        return 0

    def _owe(self, owed: dict[Any, _Owed], key: Any, read_session: bool = False) -> None:
        """Owed again: the wait doubles at each failure, up to ``MAX_RETRY_SECONDS``."""
        now = asyncio.get_running_loop().time()
        before = owed.get(key)
        wait = self._retry_seconds if before is None else before.wait
        read_session = read_session or (before is not None and before.read_session)
        owed[key] = _Owed(now + wait, min(2 * wait, MAX_RETRY_SECONDS), read_session)

    async def _stop_reason(self, batch: BatchRecord, read_session: bool) -> Deny | None:
        if read_session:
            return await self._switch.reason_to_stop_now(
                batch.agent_id, batch.project_id, batch.session_id
            )
        return self._switch.reason_to_stop(batch.agent_id, batch.project_id, batch.session_id)
