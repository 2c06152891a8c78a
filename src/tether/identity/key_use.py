"""When each agent key was last used, for the operator (the Agents page, ``tether keys
list``): noted in memory when a key is admitted — one dictionary assignment on the hot
path — and written to the store about once a second, all keys in one statement."""

from __future__ import annotations

from tether.errors import TetherError
from tether.periodic import PeriodicFlush
from tether.store.agents import AgentStore
from tether.store.clock import now_ms

__all__ = ["FLUSH_SECONDS", "KeyUse"]

FLUSH_SECONDS = 1.0


class KeyUse:
    def __init__(self, store: AgentStore) -> None:
        self._store = store
        self._used: dict[str, int] = {}
        self._flusher = PeriodicFlush("agent key use", self.flush, FLUSH_SECONDS)

    def note(self, key_id: str) -> None:
        self._used[key_id] = now_ms()

    async def flush(self) -> None:
        """Write what was noted since the last flush; kept for the next one if the store
        cannot take it now (a later use of the same key wins)."""
        used, self._used = self._used, {}
        try:
            await self._store.record_key_use(used)
        except TetherError:
            self._used = used | self._used
            raise

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
