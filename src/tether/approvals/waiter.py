"""Long-polling for a decision: a requester may wait (bounded) for its approval to be
decided instead of polling. Any replica's decision wakes it through the change feed."""

from __future__ import annotations

import asyncio
import contextlib

from tether.store.approvals import PENDING, ApprovalStore
from tether.store.changes import Change
from tether.store.clock import now_ms

__all__ = ["ApprovalWaiter"]


class ApprovalWaiter:
    def __init__(self, store: ApprovalStore) -> None:
        self._store = store
        self._waiting: dict[str, asyncio.Event] = {}

    async def apply(self, change: Change) -> None:
        if change.kind == "approval" and (event := self._waiting.get(change.ref)):
            event.set()

    async def wait(self, approval_id: str, seconds: float) -> None:
        """Return once the approval is decided or lapses, or after ``seconds``."""
        event = self._waiting.setdefault(approval_id, asyncio.Event())
        try:
            record = await self._store.get(approval_id)
            if record.state_at(now_ms()) != PENDING:
                return
            left = min(seconds, max(0.0, (record.expires_at - now_ms()) / 1000))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await event.wait()
        finally:
            self._waiting.pop(approval_id, None)
