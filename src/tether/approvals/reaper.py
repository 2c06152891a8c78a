"""Lapsed approvals become ``expired`` in the store and in the audit trail of the session
that asked, so "what happened to that request" has an answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import TetherError
from tether.identity.directory import Directory
from tether.store.approvals import ApprovalStore

__all__ = ["ApprovalReaper"]

log = logging.getLogger(__name__)


class ApprovalReaper:
    def __init__(
        self, store: ApprovalStore, audit: AuditLog, directory: Directory, every_seconds: float
    ) -> None:
        self._store = store
        self._audit = audit
        self._directory = directory
        self._every = every_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="approval-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reap(self) -> int:
        expired = await self._store.expire_due()
        events = []
        for record in expired:
            agent = self._directory.agent(record.agent_id)
            events.append(
                AuditEvent(
                    actor="tether",
                    source="approvals",
                    action="approval:expired",
                    resource=record.resource,
                    result="expired",
                    reason=f"{record.state} approval lapsed unused",
                    project_id=record.project_id,
                    agent_id=record.agent_id,
                    agent_name=agent.name if agent else None,
                    session_id=record.session_id,
                    attributes={"approval_id": record.id, "action": record.action},
                )
            )
        if events:
            await self._audit.record_many(events)
        return len(events)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.reap()
            except TetherError as exc:
                log.warning("approval reaper paused: %s", exc.message)
            except Exception:
                log.exception("approval reaper failed")
