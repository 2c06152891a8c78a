"""Long-polling for a decision: a requester may wait (bounded) for its approval to be
decided instead of polling. Any replica's decision wakes it through the change feed."""

from __future__ import annotations

import asyncio

from tether.clock import now_ms
from tether.store.approvals import PENDING, ApprovalStore
from tether.store.changes import Change

__all__ = ["ApprovalWaiter"]


class ApprovalWaiter:
    def __init__(self, store: ApprovalStore) -> None:
        self._store = store
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def waiting(self) -> int:
        """Approvals someone is waiting on now (an entry lives only while its wait does)."""
        return len(self._waiting)

    async def apply(self, change: Change) -> None:
        if change.kind == "approval":
            for event in self._waiting.get(change.ref, ()):
                event.set()

    async def wait(self, approval_id: str, seconds: float) -> None:
        """Return once the approval is decided or lapses, or after ``seconds``."""
        deadline = asyncio.get_running_loop().time() + seconds
        event = asyncio.Event()
        self._waiting.setdefault(approval_id, set()).add(event)
        try:
            while True:
                event.clear()
                record = await self._store.get(approval_id)
                if record.state_at(now_ms()) != PENDING:
                    return
                left = min(
                    deadline - asyncio.get_running_loop().time(),
                    (record.expires_at - now_ms()) / 1000,
                )
                if left <= 0:
                    return
                try:
                    async with asyncio.timeout(left):
                        await event.wait()
                except TimeoutError:
                    return
        finally:
            waiters = self._waiting.get(approval_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiting.pop(approval_id, None)
