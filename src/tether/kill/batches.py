"""Message batches a kill must reach: a batch runs upstream for hours after it was
allowed, so when its session or agent is stopped (or its project paused), tether asks
upstream to cancel it (``POST /v1/messages/batches/{id}/cancel``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

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


class BatchCanceller:
    def __init__(self, switch: KillSwitch, store: MessageBatchStore, directory: Directory) -> None:
        self._switch = switch
        self._directory = directory
        self._store = store
        self.cancel_upstream: CancelUpstream | None = None
        """Set by the Messages door, which knows the project's upstream and key."""

    async def apply(self, change: Change) -> None:
        if change.kind in STOPPING_KINDS:
            await self.enforce(change.ref if change.kind == "session" else None)

    async def enforce(self, changed_session: str | None = None) -> int:
        """Cancel every open batch whose session, agent or project is stopped now. The
        session that changed is read from the store when no call holds it here (its batch
        may have outlived every call, and this process)."""
        if self.cancel_upstream is None:
            return 0
        canceled = 0
        try:
            batches = await self._store.open_batches()
        except TetherError as exc:
            log.error("open message batches not read; none canceled: %s", exc.message)
            return 0
        for batch in batches:
            project = self._directory.project(batch.project_id)
            try:
                verdict = await self._stop_reason(batch, changed_session)
            except TetherError as exc:
                log.error("message batch %s not checked: %s", batch.id, exc.message)
                continue
            if verdict is None or project is None:
                continue
            try:
                if await self.cancel_upstream(batch, project):
                    await self._store.mark_canceled(batch.id)
                    canceled += 1
                    log.info("message batch %s canceled: %s", batch.id, verdict.reason)
            except Exception:
                log.exception("canceling message batch %s failed", batch.id)
        return canceled

    async def _stop_reason(self, batch: BatchRecord, changed_session: str | None) -> Deny | None:
        if changed_session is not None and batch.session_id == changed_session:
            return await self._switch.reason_to_stop_now(
                batch.agent_id, batch.project_id, batch.session_id
            )
        return self._switch.reason_to_stop(batch.agent_id, batch.project_id, batch.session_id)
