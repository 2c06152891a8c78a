"""Message batches a kill must reach: a batch runs upstream for hours after it was
allowed, so when its session or agent is stopped (or its project paused), tether asks
upstream to cancel it (``POST /v1/messages/batches/{id}/cancel``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tether.errors import TetherError
from tether.identity.directory import Directory
from tether.kill.switch import KillSwitch
from tether.records.fleet import Project
from tether.records.message_batches import BatchRecord
from tether.records.verdicts import Deny
from tether.store.changes import Change
from tether.store.message_batches import MessageBatchStore

__all__ = ["BatchCanceller"]

log = logging.getLogger(__name__)

STOPPING_KINDS = frozenset({"session", "agent", "project", "control"})
"""The changes that can stop a batch's session, agent or project (a kill, a stop or a
revocation, a pause, pause-all); the others (an approval joined, a budget moved) cannot,
and reading every open batch on each of them cost a query per refused deletion."""

CancelUpstream = Callable[[BatchRecord, Project], Awaitable[bool]]
"""Asks upstream to cancel a batch with its project's key; True when upstream agreed."""

RETRY_SECONDS = 2.0
"""How soon a kill whose batches could not all be checked or canceled (the store or
upstream failed) is enforced again; each further failure doubles the wait, up to
``MAX_RETRY_SECONDS``, until it is."""
MAX_RETRY_SECONDS = 300.0


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
        self._owed: dict[str | None, tuple[float, float]] = {}
        """Kills (the session that changed, None for any other stop) not enforced through,
        with when to try again and the wait after that (``loop.time()``)."""

    async def apply(self, change: Change) -> None:
        if change.kind in STOPPING_KINDS:
            await self.enforce(change.ref if change.kind == "session" else None)

    async def enforce(self, changed_session: str | None = None) -> int:
        """Cancel every open batch whose session, agent or project is stopped now. The
        session that changed is read from the store when no call holds it here (its batch
        may have outlived every call, and this process). One not done through (the store
        or upstream failed) is owed, and done again (``RETRY_SECONDS``, then less often)
        until it is: a batch runs upstream for hours, and no later change may come to
        stop it."""
        if self.cancel_upstream is None:
            return 0
        canceled, done = await self._enforce_once(self.cancel_upstream, changed_session)
        if done:
            self._owed.pop(changed_session, None)
        else:
            _, wait = self._owed.get(changed_session, (0.0, self._retry_seconds))
            now = asyncio.get_running_loop().time()
            self._owed[changed_session] = (now + wait, min(2 * wait, MAX_RETRY_SECONDS))
        return canceled

    def owed(self) -> int:
        """Kills whose batches are to be checked or canceled again."""
        return len(self._owed)

    async def lifetime(self, _app: Any) -> AsyncIterator[None]:
        """Enforce owed kills again while the server runs (an aiohttp cleanup context)."""
        task = asyncio.create_task(self._retry_owed(), name="owed message batch cancels")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _retry_owed(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds / 4)
            now = asyncio.get_running_loop().time()
            for changed_session, (due, _) in list(self._owed.items()):
                if due > now:
                    continue
                try:
                    await self.enforce(changed_session)
                except Exception:
                    log.exception("owed message batch cancels failed again")

    async def _enforce_once(
        self, cancel_upstream: CancelUpstream, changed_session: str | None
    ) -> tuple[int, bool]:
        """Batches canceled, and whether every open batch was checked and every stopped
        one canceled."""
        try:
            batches = await self._store.open_batches()
        except TetherError as exc:
            log.error("open message batches not read; none canceled: %s", exc.message)
            return 0, False
        canceled, done = 0, True
        for batch in batches:
            project = self._directory.project(batch.project_id)
            try:
                verdict = await self._stop_reason(batch, changed_session)
            except TetherError as exc:
                log.error("message batch %s not checked: %s", batch.id, exc.message)
                done = False
                continue
            if verdict is None or project is None:
                continue
            try:
                if await cancel_upstream(batch, project):
                    await self._store.mark_canceled(batch.id)
                    canceled += 1
                    log.info("message batch %s canceled: %s", batch.id, verdict.reason)
                    continue
                log.error("message batch %s: upstream did not cancel it now", batch.id)
            except Exception:
                log.exception("canceling message batch %s failed", batch.id)
            done = False
        return canceled, done

    async def _stop_reason(self, batch: BatchRecord, changed_session: str | None) -> Deny | None:
        if changed_session is not None and batch.session_id == changed_session:
            return await self._switch.reason_to_stop_now(
                batch.agent_id, batch.project_id, batch.session_id
            )
        return self._switch.reason_to_stop(batch.agent_id, batch.project_id, batch.session_id)
