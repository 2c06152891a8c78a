"""Budget leases: each process reserves a slice of a budget period in the database and
serves calls from it in memory, so a budgeted call costs no transaction of its own.

A lease is an ordinary reservation row, so every replica still sees it as reserved and
none can overspend: a process only spends what it holds. What calls spend is written
back (charged, and the lease renewed) about once a second; a lease nobody used for
``idle_ms`` is given back whole. When a slice cannot be had (the budget's tail), the
lease grows by exactly what the call needs, so the last cents stay usable.

What it costs: the period's ``spent`` is up to a second behind on other replicas, its
``reserved`` includes the unused part of live leases, and a process that dies holding a
lease leaves it unsettled (still reserved, not spent) until an operator settles it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tether.clock import new_id, now_ms
from tether.errors import TetherError
from tether.periodic import PeriodicFlush
from tether.records.budgets import Budget
from tether.store.budget_ledger import LeaseReturn, LeasingLedger
from tether.store.budgets import Hold, PeriodUsage

__all__ = ["DEFAULT_LEASE_PERCENT", "LeasedLedger"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_PERCENT = 2.0
"""A lease's slice, in percent of the budget's limit."""
FLUSH_SECONDS = 1.0
IDLE_MS = 3_000


@dataclass(slots=True)
class _Lease:
    id: str
    budget: Budget
    period_key: str
    period_end: int | None
    seen: PeriodUsage
    """The period as the database last answered (spent by everyone, as of then)."""
    expires_at: int
    held_micros: int = 0
    held_tokens: int = 0
    busy_micros: int = 0
    busy_tokens: int = 0
    spent_micros: int = 0
    spent_tokens: int = 0
    last_used: int = field(default_factory=now_ms)

    def shortfall(self, micros: int, tokens: int) -> tuple[int, int]:
        """What the lease lacks for a call, in each unit the budget limits (a unit it
        does not limit is never held: spending it needs no room)."""
        return (
            max(0, micros - (self.held_micros - self.busy_micros - self.spent_micros))
            if self.budget.limit_micros is not None
            else 0,
            max(0, tokens - (self.held_tokens - self.busy_tokens - self.spent_tokens))
            if self.budget.limit_tokens is not None
            else 0,
        )

    def fits(self, micros: int, tokens: int) -> bool:
        return self.shortfall(micros, tokens) == (0, 0)

    def released(self) -> tuple[int, int]:
        """What writing back the spending releases of what the lease holds."""
        return (
            self.spent_micros if self.budget.limit_micros is not None else 0,
            self.spent_tokens if self.budget.limit_tokens is not None else 0,
        )

    def usage(self) -> PeriodUsage:
        """The period as this process sees it: what the database said, plus what was
        spent here since."""
        return PeriodUsage(
            self.seen.budget_id,
            self.seen.period_key,
            self.seen.spent_micros + self.spent_micros,
            self.seen.reserved_micros,
            self.seen.spent_tokens + self.spent_tokens,
            self.seen.reserved_tokens,
            self.seen.period_end,
        )


@dataclass(slots=True)
class _Taken:
    lease: _Lease
    micros: int
    tokens: int


_LeaseKey = tuple[str, str, int | None, int | None]


@dataclass(slots=True)
class _Growth:
    """One growth of a lease at a time; ``users`` counts the calls waiting for it or in it,
    so the lock is dropped only when none is."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _key(hold: Hold) -> _LeaseKey:
    """A changed limit is a new lease: the old one runs idle and is given back."""
    budget = hold.budget
    return budget.id, hold.period_key, budget.limit_micros, budget.limit_tokens


def _return(lease: _Lease, expires_at: int, *, close: bool) -> LeaseReturn:
    return LeaseReturn(
        lease.id,
        lease.budget.id,
        lease.period_key,
        lease.spent_micros,
        lease.spent_tokens,
        *lease.released(),
        expires_at,
        close=close,
    )


class LeasedLedger:
    """A ``BudgetLedger`` that serves reservations from per-process leases held in
    ``ledger``; settlements are idempotent as the database ledger's are."""

    def __init__(
        self,
        ledger: LeasingLedger,
        percent: float,
        lease_ms: int,
        idle_ms: int = IDLE_MS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._ledger = ledger
        self._fraction = percent / 100
        self._lease_ms = lease_ms
        self._idle_ms = idle_ms
        self._leases: dict[_LeaseKey, _Lease] = {}
        self._calls: dict[str, list[_Taken]] = {}
        self._giving_back: list[_Lease] = []
        self._growing: dict[_LeaseKey, _Growth] = {}
        self._flusher = PeriodicFlush("budget leases", self.flush, flush_seconds)
        self._flush_lock = asyncio.Lock()

    def start(self) -> None:
        self._flusher.start()

    async def reserve(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        return await self._take(reservation_id, holds)

    async def extend(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        return await self._take(reservation_id, holds)

    async def _take(self, reservation_id: str, holds: Sequence[Hold]) -> Hold | None:
        """Every hold from its lease, or none of them."""
        taken: list[_Taken] = []
        for hold in holds:
            lease = await self._room_for(hold)
            if lease is None:
                for part in taken:
                    part.lease.busy_micros -= part.micros
                    part.lease.busy_tokens -= part.tokens
                return hold
            lease.busy_micros += hold.micros
            lease.busy_tokens += hold.tokens
            lease.last_used = now_ms()
            taken.append(_Taken(lease, hold.micros, hold.tokens))
        self._calls.setdefault(reservation_id, []).extend(taken)
        return None

    async def _room_for(self, hold: Hold) -> _Lease | None:
        """The lease with room for ``hold`` once it has been grown if need be (a slice, or
        just what is missing when no slice fits); None when the budget cannot hold it.
        One growth per lease at a time: the second caller finds the room the first made."""
        key = _key(hold)
        lease = self._leases.get(key)
        if lease is not None and lease.fits(hold.micros, hold.tokens):
            return lease
        growing = self._growing.setdefault(key, _Growth())
        growing.users += 1
        try:
            async with growing.lock:
                return await self._grown_for(key, hold)
        finally:
            growing.users -= 1
            if growing.users == 0 and key not in self._leases:
                self._growing.pop(key, None)

    async def _grown_for(self, key: _LeaseKey, hold: Hold) -> _Lease | None:
        while True:
            lease = self._leases.get(key)
            if lease is not None and lease.fits(hold.micros, hold.tokens):
                return lease
            short_m, short_t = (
                lease.shortfall(hold.micros, hold.tokens)
                if lease is not None
                else (
                    hold.micros if hold.budget.limit_micros is not None else 0,
                    hold.tokens if hold.budget.limit_tokens is not None else 0,
                )
            )
            slice_m, slice_t = self._slice(hold.budget)
            wanted = ((max(short_m, slice_m), max(short_t, slice_t)), (short_m, short_t))
            for micros, tokens in wanted:
                if await self._grow(lease, hold, micros, tokens):
                    break
            else:
                return None

    def _slice(self, budget: Budget) -> tuple[int, int]:
        return (
            math.ceil(budget.limit_micros * self._fraction) if budget.limit_micros else 0,
            math.ceil(budget.limit_tokens * self._fraction) if budget.limit_tokens else 0,
        )

    async def _grow(self, lease: _Lease | None, hold: Hold, micros: int, tokens: int) -> bool:
        expires_at = now_ms() + self._lease_ms
        grown = Hold(hold.budget, hold.period_key, hold.period_end, micros, tokens)
        lease_id = lease.id if lease is not None else new_id()
        seen = await self._ledger.lease(lease_id, grown, expires_at, grow=lease is not None)
        if seen is None:
            return False
        if lease is None:
            lease = _Lease(
                lease_id, hold.budget, hold.period_key, hold.period_end, seen, expires_at
            )
            self._leases[_key(hold)] = lease
        lease.held_micros += micros
        lease.held_tokens += tokens
        lease.seen, lease.expires_at = seen, expires_at
        return True

    async def settle(
        self, reservation_id: str, holds: Sequence[Hold], micros: int, tokens: int
    ) -> list[PeriodUsage]:
        taken = self._calls.pop(reservation_id, None)
        if taken is None:
            return []
        usages = []
        for lease in {id(part.lease): part.lease for part in taken}.values():
            mine = [part for part in taken if part.lease is lease]
            lease.busy_micros -= sum(part.micros for part in mine)
            lease.busy_tokens -= sum(part.tokens for part in mine)
            charged_m, charged_t = await self._chargeable(lease, micros, tokens)
            lease.spent_micros += charged_m
            lease.spent_tokens += charged_t
            lease.last_used = now_ms()
            usages.append(lease.usage())
        return usages

    async def _chargeable(self, lease: _Lease, micros: int, tokens: int) -> tuple[int, int]:
        """What a call's real cost may be charged to ``lease``: all of it when the lease
        holds it (grown first if need be), else only what the lease can hold — a lease never
        spends more than it holds, so the budget's ``reserved`` never goes below zero and
        its ``spent`` never past the limit."""
        if lease.fits(micros, tokens):
            return micros, tokens
        hold = Hold(lease.budget, lease.period_key, lease.period_end, micros, tokens)
        if await self._room_for(hold) is lease and lease.fits(micros, tokens):
            return micros, tokens
        free_m = lease.held_micros - lease.busy_micros - lease.spent_micros
        free_t = lease.held_tokens - lease.busy_tokens - lease.spent_tokens
        if lease.budget.limit_micros is not None:
            micros = max(0, min(micros, free_m))
        if lease.budget.limit_tokens is not None:
            tokens = max(0, min(tokens, free_t))
        return micros, tokens

    async def flush(self, *, closing: bool = False) -> None:
        """Write back what leases spent, renew the live ones, give back idle ones (all of
        them when ``closing``). A lease being given back serves no call, and stays to be
        given back again if the database could not take it."""
        async with self._flush_lock:
            at = now_ms()
            for key, lease in list(self._leases.items()):
                unused = lease.busy_micros == 0 and lease.busy_tokens == 0
                growing = self._growing.get(key)
                if growing is not None and growing.users:
                    continue
                if unused and (closing or at - lease.last_used >= self._idle_ms):
                    self._giving_back.append(self._leases.pop(key))
                    self._growing.pop(key, None)
            live = [
                lease
                for lease in self._leases.values()
                if lease.spent_micros
                or lease.spent_tokens
                or lease.expires_at - at < self._lease_ms // 2
            ]
            returns = [_return(lease, at + self._lease_ms, close=False) for lease in live]
            returns += [_return(lease, lease.expires_at, close=True) for lease in self._giving_back]
            if not returns:
                return
            usages = await self._ledger.give_back(returns)
            self._giving_back.clear()
            seen = {(usage.budget_id, usage.period_key): usage for usage in usages}
            for lease, back in zip(live, returns, strict=False):
                lease.held_micros -= back.released_micros
                lease.held_tokens -= back.released_tokens
                lease.spent_micros -= back.spent_micros
                lease.spent_tokens -= back.spent_tokens
                lease.expires_at = back.expires_at
                lease.seen = seen.get((back.budget_id, back.period_key), lease.seen)

    async def close(self) -> None:
        """Write back and give back every lease; one the database cannot take now stays
        reserved, and becomes unsettled once its hold lapses."""
        await self._flusher.stop()
        try:
            await self.flush(closing=True)
        except TetherError as exc:
            log.warning("budget leases not given back (they will become unsettled): %s", exc)
        await self._ledger.close()
