"""Budget leases: each process reserves a slice of a budget period in the database and
serves calls from it in memory, so a budgeted call costs no transaction of its own.

A lease is an ordinary reservation row, so every replica still sees it as reserved and
none can overspend: a process only spends what it holds. What calls spend is written
back (charged, and the lease renewed) about once a second; a lease nobody used for
``idle_ms`` is given back whole. A session's own period (a per-session budget) is
written back that often only while calls run on it: one no call is using waits
``idle_ms`` from its last write-back, and is usually given back by then with what it
spent, so a session's last call costs two statements going back, not four. When a slice
cannot be had (the budget's tail), the lease grows by exactly what the call needs, so the
last cents stay usable.

A reservation meant to outlive the leases (a message batch's, held for hours and settled
when its results are read, perhaps by another process or after a restart) is a row of its
own in the database, as without leases: a lease lives only as long as its process.

What it costs: the period's ``spent`` is up to a second behind on other replicas (a
session's period, once its calls stop, up to ``idle_ms`` and a flush; what its lease
holds stays reserved meanwhile, so none can overspend), its ``reserved`` includes the
unused part of live leases, and a process that dies holding a lease leaves it unsettled
(still reserved, not spent) until an operator settles it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.clock import new_id, now_ms
from tether.errors import TetherError
from tether.periodic import PeriodicFlush
from tether.records.budgets import Budget, BudgetPeriod
from tether.store.budget_ledger import LeaseReturn, LeasingLedger, ReservationSettled
from tether.store.budgets import Hold, PeriodUsage
from tether.store.sqlite_writer import Queued

__all__ = ["DEFAULT_LEASE_PERCENT", "LeasedLedger"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_PERCENT = 2.0
"""A lease's slice, in percent of the budget's limit."""
FLUSH_SECONDS = 1.0
IDLE_MS = 3_000
GIVE_BACK_CHUNK = 16
"""Leases written back or given back a transaction. A fleet of short sessions has
hundreds a second: one transaction for all of them held the SQLite writer, and every
call's commit queued behind it, for 10 ms and more; sixteen take about half a
millisecond."""
FLUSH_TRANSACTIONS = 8
MAX_GIVE_BACK_CHUNK = 128
"""More leases than ``FLUSH_TRANSACTIONS`` chunks of sixteen go back in that many larger
chunks, of at most this many (a few milliseconds a transaction). The chunks are written
one after another, so with chunks of sixteen a flush kept up with only a few hundred
leases a second: at saturation with a new session every call (each session's lease is
written back, then given back) the leases waiting to go back grew by hundreds a phase, and
by 13,400 on a faster machine. A backlog now costs the calls' commits a few milliseconds
behind a larger chunk, not memory without bound."""


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
    written_at: int = field(default_factory=now_ms)
    """When what it spent was last written back (or it was made)."""
    written: Queued[None] | None = None
    """The lease's own row while it waits for the writer's next commit (a fresh period)."""
    forgotten: bool = False
    """Its row was settled by an operator: it serves no call more."""
    writes: int = 0
    """Its write-backs that landed (its row counts them too)."""
    unconfirmed: LeaseReturn | None = None
    """A write-back whose outcome was not heard (its commit may have landed): sent again,
    as it was, before anything else is written back or given back for this lease."""

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
    written: Queued[None] | None = None
    """The lease's row as it was pending when this was taken: the call waits for it, and
    learns of its failure, however the lease fares meanwhile."""


_LeaseKey = tuple[str, str, int | None, int | None]


@dataclass(slots=True)
class _Growth:
    """One growth of a lease at a time; ``users`` counts the calls waiting for it or in it,
    so the lock is dropped only when none is."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _key(held: Hold | _Lease) -> _LeaseKey:
    """A changed limit is a new lease: the old one runs idle and is given back."""
    budget = held.budget
    return budget.id, held.period_key, budget.limit_micros, budget.limit_tokens


def _cost_hold(lease: _Lease, micros: int, tokens: int) -> Hold:
    return Hold(lease.budget, lease.period_key, lease.period_end, micros, tokens)


def _chunks(leases: list[_Lease]) -> list[list[_Lease]]:
    """Chunks of ``GIVE_BACK_CHUNK``, or, for a backlog, ``FLUSH_TRANSACTIONS`` larger ones
    (at most ``MAX_GIVE_BACK_CHUNK`` each)."""
    wanted = math.ceil(len(leases) / FLUSH_TRANSACTIONS)
    size = min(MAX_GIVE_BACK_CHUNK, max(GIVE_BACK_CHUNK, wanted))
    return [leases[at : at + size] for at in range(0, len(leases), size)]


async def _trying(write: Coroutine[Any, Any, None], failed: list[TetherError]) -> None:
    """One chunk the database refuses does not hold back the others."""
    try:
        await write
    except TetherError as exc:
        failed.append(exc)


def _give_back_taken(taken: list[_Taken]) -> None:
    """Holds taken for a call that will not go on are free again in their leases."""
    for part in taken:
        part.lease.busy_micros -= part.micros
        part.lease.busy_tokens -= part.tokens


def _return(lease: _Lease, expires_at: int, *, close: bool) -> LeaseReturn:
    if lease.unconfirmed is not None and not close:
        return lease.unconfirmed
    return LeaseReturn(
        lease.id,
        lease.budget.id,
        lease.period_key,
        lease.spent_micros,
        lease.spent_tokens,
        *lease.released(),
        expires_at,
        close=close,
        writes=lease.writes,
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
        session_write_back_ms: int | None = None,
    ) -> None:
        self._ledger = ledger
        self._fraction = percent / 100
        self._lease_ms = lease_ms
        self._idle_ms = idle_ms
        self._session_write_back_ms = (
            idle_ms if session_write_back_ms is None else session_write_back_ms
        )
        """How long a session's lease no call is using waits, from its last write-back,
        before what it spent is written back (``_write_back_due``)."""
        self._leases: dict[_LeaseKey, _Lease] = {}
        self._calls: dict[str, list[_Taken]] = {}
        self._giving_back: dict[str, _Lease] = {}
        """Idle leases on their way back, by lease id, oldest first."""
        self._growing: dict[_LeaseKey, _Growth] = {}
        self._flusher = PeriodicFlush("budget leases", self.flush, flush_seconds)
        self._flush_lock = asyncio.Lock()

    def start(self) -> None:
        self._flusher.start()

    def sizes(self) -> dict[str, int]:
        """What this process holds of budgets in memory now: leases serving calls, idle
        ones on their way back, and calls that took from a lease and are not settled yet.
        All three empty out as sessions go idle (``tether_in_memory_entries``)."""
        return {
            "budget_leases": len(self._leases),
            "budget_leases_returning": len(self._giving_back),
            "budget_calls_unsettled": len(self._calls),
        }

    async def reserve(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        if expires_at - now_ms() > self._lease_ms:
            return await self._ledger.reserve(reservation_id, holds, expires_at)
        return await self._take(reservation_id, holds)

    async def extend(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        """A reservation this process does not hold from its leases is the database's: one
        held there (``reserve``), or one settled already (``ReservationSettled``)."""
        if reservation_id not in self._calls:
            return await self._ledger.extend(reservation_id, holds, expires_at)
        return await self._take(reservation_id, holds)

    async def _take(self, reservation_id: str, holds: Sequence[Hold]) -> Hold | None:
        """Every hold from its lease, or none of them."""
        taken: list[_Taken] = []
        try:
            for hold in holds:
                lease = await self._room_for(hold)
                if lease is None:
                    _give_back_taken(taken)
                    return hold
                lease.busy_micros += hold.micros
                lease.busy_tokens += hold.tokens
                lease.last_used = now_ms()
                taken.append(_Taken(lease, hold.micros, hold.tokens, lease.written))
        except BaseException:
            _give_back_taken(taken)
            raise
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
        if lease is None and hold.fresh and key not in self._growing:
            made = self._first_lease_fresh(hold)
            if made is not None:
                return self._leases[key] if made else None
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
            for micros, tokens in self._wanted(lease, hold):
                if await self._grow(lease, hold, micros, tokens):
                    break
            else:
                return None

    def _first_lease_fresh(self, hold: Hold) -> bool | None:
        """A period's first lease, when no one else can charge it yet (``_lease_fresh``),
        made without waiting: nothing else can be growing it, so no lock is taken. As
        ``_grown_for`` would: a slice, or just the hold when no slice fits; None when the
        ledger cannot defer the write (lease as usual)."""
        expires_at = now_ms() + self._lease_ms
        for micros, tokens in self._wanted(None, hold):
            grown = Hold(hold.budget, hold.period_key, hold.period_end, micros, tokens)
            made = self._lease_fresh(grown, expires_at)
            if made is None or made:
                return made
        return False

    def _wanted(self, lease: _Lease | None, hold: Hold) -> tuple[tuple[int, int], ...]:
        """What to grow ``lease`` by for ``hold``, first choice first: a slice of the
        budget, else just what is missing."""
        short_m, short_t = (
            lease.shortfall(hold.micros, hold.tokens)
            if lease is not None
            else (
                hold.micros if hold.budget.limit_micros is not None else 0,
                hold.tokens if hold.budget.limit_tokens is not None else 0,
            )
        )
        slice_m, slice_t = self._slice(hold.budget)
        return ((max(short_m, slice_m), max(short_t, slice_t)), (short_m, short_t))

    def _slice(self, budget: Budget) -> tuple[int, int]:
        return (
            math.ceil(budget.limit_micros * self._fraction) if budget.limit_micros else 0,
            math.ceil(budget.limit_tokens * self._fraction) if budget.limit_tokens else 0,
        )

    async def _grow(self, lease: _Lease | None, hold: Hold, micros: int, tokens: int) -> bool:
        expires_at = now_ms() + self._lease_ms
        grown = Hold(hold.budget, hold.period_key, hold.period_end, micros, tokens)
        if lease is None and hold.fresh:
            fresh = self._lease_fresh(grown, expires_at)
            if fresh is not None:
                return fresh
        if lease is not None and lease.written is not None:
            await lease.written.result()
        lease_id = lease.id if lease is not None else new_id()
        try:
            seen = await self._ledger.lease(lease_id, grown, expires_at, grow=lease is not None)
        except ReservationSettled:
            self._forget(lease)
            lease, lease_id = None, new_id()
            seen = await self._ledger.lease(lease_id, grown, expires_at, grow=False)
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

    def _lease_fresh(self, hold: Hold, expires_at: int) -> bool | None:
        """A first lease on an empty period no one else can charge yet is decided here (the
        database would compare the same numbers) and written with the call's next commit;
        calls taking from it wait for that commit (``unwritten``), and a lease whose row
        could not be written is forgotten. None: the ledger cannot defer the write (lease
        as usual)."""
        budget = hold.budget
        if (budget.limit_micros is not None and hold.micros > budget.limit_micros) or (
            budget.limit_tokens is not None and hold.tokens > budget.limit_tokens
        ):
            return False
        lease_id = new_id()
        written = self._ledger.lease_fresh(lease_id, hold, expires_at)
        if written is None:
            return None
        seen = PeriodUsage(
            budget.id, hold.period_key, 0, hold.micros, 0, hold.tokens, hold.period_end
        )
        key = _key(hold)
        lease = _Lease(lease_id, budget, hold.period_key, hold.period_end, seen, expires_at)
        lease.held_micros, lease.held_tokens, lease.written = hold.micros, hold.tokens, written
        self._leases[key] = lease
        written.add_done_callback(lambda done: self._lease_written(key, lease, done))
        return True

    def _forget(self, lease: _Lease | None) -> None:
        """A lease whose row an operator settled serves no one more: what it spent until
        then went with the row, as the operator settled it; calls still running on it are
        charged to the lease that serves its period next (``settle``)."""
        if lease is None:
            return
        lease.forgotten = True
        key = _key(lease)
        if self._leases.get(key) is lease:
            del self._leases[key]

    def _lease_written(self, key: _LeaseKey, lease: _Lease, done: asyncio.Future[object]) -> None:
        """A fresh lease's row is in, or it is not and the lease serves no one more (the
        calls that took from it learn why from their ``_Taken.written``)."""
        lease.written = None
        if (done.cancelled() or done.exception() is not None) and self._leases.get(key) is lease:
            del self._leases[key]

    def unwritten(self, reservation_id: str) -> list[Queued[Any]]:
        return [
            part.written for part in self._calls.get(reservation_id, ()) if part.written is not None
        ]

    async def settle(
        self, reservation_id: str, holds: Sequence[Hold], micros: int, tokens: int
    ) -> list[PeriodUsage]:
        """Each budget period the call took from is charged once, on the lease it took from
        last (a stream may span a lease and its replacement). Should the store fail midway,
        the periods not yet charged stay for the caller's retry. One no lease of this
        process holds is settled in the database, which settles each reservation once: a
        message batch's (``reserve``), whichever process reserved it."""
        taken = self._calls.pop(reservation_id, None)
        if taken is None:
            return await self._ledger.settle(reservation_id, holds, micros, tokens)
        by_period: dict[tuple[str, str], list[_Taken]] = {}
        for part in taken:
            by_period.setdefault((part.lease.budget.id, part.lease.period_key), []).append(part)
        periods = list(by_period.values())
        usages = []
        for at, parts in enumerate(periods):
            _give_back_taken(parts)
            try:
                lease, charged_m, charged_t = await self._charged(parts[-1].lease, micros, tokens)
            except BaseException:
                for later in periods[at + 1 :]:
                    _give_back_taken(later)
                self._calls[reservation_id] = [_Taken(p[-1].lease, 0, 0) for p in periods[at:]]
                raise
            lease.spent_micros += charged_m
            lease.spent_tokens += charged_t
            lease.last_used = now_ms()
            usages.append(lease.usage())
        return usages

    async def _charged(self, lease: _Lease, micros: int, tokens: int) -> tuple[_Lease, int, int]:
        """The lease a call's real cost goes to, and what of it: all of it when the lease
        holds it (grown first if need be), else only what the lease can hold — a lease never
        spends more than it holds, so the budget's ``reserved`` never goes below zero and
        its ``spent`` never past the limit. A lease forgotten meanwhile (an operator settled
        it) hands the cost to the one serving its period now."""
        if lease.forgotten and (micros or tokens):
            serving = await self._room_for(_cost_hold(lease, micros, tokens))
            if serving is None:
                log.warning(
                    "a call's cost (%d micros, %d tokens) on budget %s could not be charged: "
                    "its lease was settled by an operator and the budget has no room left",
                    micros,
                    tokens,
                    lease.budget.id,
                )
                return lease, 0, 0
            lease = serving
        if lease.fits(micros, tokens):
            return lease, micros, tokens
        grown = await self._room_for(_cost_hold(lease, micros, tokens))
        if grown is not None and grown.fits(micros, tokens):
            return grown, micros, tokens
        free_m = lease.held_micros - lease.busy_micros - lease.spent_micros
        free_t = lease.held_tokens - lease.busy_tokens - lease.spent_tokens
        if lease.budget.limit_micros is not None:
            micros = max(0, min(micros, free_m))
        if lease.budget.limit_tokens is not None:
            tokens = max(0, min(tokens, free_t))
        return lease, micros, tokens

    async def flush(self, *, closing: bool = False) -> None:
        """Write back what leases spent, renew the live ones, give back idle ones (all of
        them when ``closing``). A lease being given back serves no call, and stays to be
        given back again if the database could not take it."""
        async with self._flush_lock:
            failed: list[TetherError] = []
            unheard = [lease for lease in self._leases.values() if lease.unconfirmed is not None]
            for chunk in _chunks(unheard):
                await _trying(self._write_back(chunk, now_ms() + self._lease_ms), failed)
            at = now_ms()
            for key, lease in list(self._leases.items()):
                unused = lease.busy_micros == 0 and lease.busy_tokens == 0
                growing = self._growing.get(key)
                if (growing is not None and growing.users) or lease.unconfirmed is not None:
                    continue
                if unused and (closing or at - lease.last_used >= self._idle_ms):
                    idle = self._leases.pop(key)
                    self._giving_back[idle.id] = idle
                    self._growing.pop(key, None)
            live = [
                lease
                for lease in self._leases.values()
                if lease.unconfirmed is None
                and (
                    self._write_back_due(lease, at, closing)
                    or lease.expires_at - at < self._lease_ms // 2
                )
            ]
            renewed = at + self._lease_ms
            for chunk in _chunks(live):
                await _trying(self._write_back(chunk, renewed), failed)
            for chunk in _chunks(list(self._giving_back.values())):
                await _trying(self._give_back_idle(chunk), failed)
            if failed:
                raise failed[0]

    def _write_back_due(self, lease: _Lease, at: int, closing: bool) -> bool:
        """It spent something; a session's period, also (unless closing) that calls are
        running on it or that it has waited (``idle_ms``) since its last write-back. Only
        that session charges its period, so no one else needs its spending within the
        second, and a session whose calls stopped is given back first, charging what it
        spent with the same statements (each session that makes one call and no more, as
        a client that names no session does for every new conversation, writes two
        statements fewer)."""
        if not (lease.spent_micros or lease.spent_tokens):
            return False
        if closing or lease.budget.period is not BudgetPeriod.SESSION:
            return True
        running = lease.busy_micros or lease.busy_tokens
        return bool(running) or at - lease.written_at >= self._session_write_back_ms

    async def _write_back(self, live: list[_Lease], expires_at: int) -> None:
        """Charge what ``live`` leases spent and renew them, in one transaction; what was
        spent meanwhile stays on the lease for the next flush. A lease whose row an
        operator settled is forgotten. When the outcome is not heard (the commit may have
        landed, its reply lost, or the flush was cancelled at shutdown), each write-back is
        kept to be sent again as it was, its renewal included: the row's count of
        write-backs tells whether it landed."""
        returns = [_return(lease, expires_at, close=False) for lease in live]
        try:
            held = await self._ledger.give_back(returns)
        except BaseException:
            for lease, back in zip(live, returns, strict=True):
                lease.unconfirmed = back
            raise
        written_at = now_ms()
        for lease, back in zip(live, returns, strict=True):
            lease.written_at = written_at
            lease.unconfirmed = None
            if lease.id not in held:
                self._forget(lease)
                continue
            lease.writes = back.writes + 1
            lease.held_micros -= back.released_micros
            lease.held_tokens -= back.released_tokens
            lease.spent_micros -= back.spent_micros
            lease.spent_tokens -= back.spent_tokens
            lease.expires_at = max(lease.expires_at, back.expires_at)
            lease.seen = held[lease.id] or lease.seen

    async def _give_back_idle(self, idle: list[_Lease]) -> None:
        await self._ledger.close_leases(
            [_return(lease, lease.expires_at, close=True) for lease in idle]
        )
        for lease in idle:
            self._giving_back.pop(lease.id, None)

    async def close(self) -> None:
        """Write back and give back every lease; one the database cannot take now stays
        reserved, and becomes unsettled once its hold lapses."""
        await self._flusher.stop()
        try:
            await self.flush(closing=True)
        except TetherError as exc:
            log.warning("budget leases not given back (they will become unsettled): %s", exc)
        await self._ledger.close()
