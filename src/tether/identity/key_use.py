"""When each agent key was last used, and from which client addresses, for the operator
(the Agents page, ``tether keys list``, the shared-key readiness check): noted in memory
when a key is admitted — a dictionary assignment or two on the hot path — and written to
the store about once a second, all keys in one batch."""

from __future__ import annotations

from tether.clock import now_ms
from tether.errors import TetherError
from tether.periodic import PeriodicFlush
from tether.store.agents import AgentStore
from tether.store.key_addresses import HOUR_MS, AddressUse, KeyAddressStore

__all__ = ["FLUSH_SECONDS", "MAX_PENDING_ADDRESSES", "KeyUse"]

FLUSH_SECONDS = 1.0
MAX_PENDING_ADDRESSES = 10_000
"""Distinct (key, hour, address) noted between two flushes, at most: a flood of
addresses cannot grow memory; uses past the cap still count for ``last_used_at``."""
MAX_REMEMBERED_KEYS = 100_000
"""Keys whose last address is remembered (to see a switch); forgotten all at once past it."""


class KeyUse:
    def __init__(self, store: AgentStore, addresses: KeyAddressStore | None = None) -> None:
        self._store = store
        self._address_store = addresses
        self._used: dict[str, int] = {}
        self._last_address: dict[str, str] = {}
        self._addresses: dict[tuple[str, int, str], tuple[int, int]] = {}
        """(key, hour, address) → (uses, switches): plain tuples, cheap to hash."""
        self._flusher = PeriodicFlush("agent key use", self.flush, FLUSH_SECONDS)

    def note(self, key_id: str, address: str | None = None) -> None:
        at = now_ms()
        self._used[key_id] = at
        if address is not None:
            self.note_address(key_id, address, at)

    def note_address(self, key_id: str, address: str, at: int | None = None) -> None:
        """``key_id`` (an agent key's or a broker key pair's) used from ``address``."""
        if self._address_store is None:
            return
        at = now_ms() if at is None else at
        if len(self._last_address) >= MAX_REMEMBERED_KEYS and key_id not in self._last_address:
            self._last_address.clear()
        switched = self._last_address.get(key_id, address) != address
        self._last_address[key_id] = address
        use = (key_id, at - at % HOUR_MS, address)
        uses, switches = self._addresses.get(use, (0, 0))
        if uses or len(self._addresses) < MAX_PENDING_ADDRESSES:
            self._addresses[use] = (uses + 1, switches + switched)

    async def flush(self) -> None:
        """Write what was noted since the last flush; kept for the next one if the store
        cannot take it now (a later use of the same key wins)."""
        used, self._used = self._used, {}
        addresses, self._addresses = self._addresses, {}
        try:
            await self._store.record_key_use(used)
        except TetherError:
            self._used = used | self._used
            self._addresses = _merged(addresses, self._addresses)
            raise
        if self._address_store is None:
            return
        try:
            await self._address_store.add(
                {AddressUse(*use): counts for use, counts in addresses.items()}
            )
        except TetherError:
            self._addresses = _merged(addresses, self._addresses)
            raise

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()


Pending = dict[tuple[str, int, str], tuple[int, int]]


def _merged(older: Pending, newer: Pending) -> Pending:
    merged = dict(older)
    for use, (uses, switches) in newer.items():
        was = merged.get(use, (0, 0))
        merged[use] = (was[0] + uses, was[1] + switches)
    return merged
