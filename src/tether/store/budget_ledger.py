"""Reserving and settling budgets on the hot path, in plain SQL on the driver.

One upsert per budget, conditional on the limit: ``INSERT … ON CONFLICT DO UPDATE … WHERE
spent + reserved + amount <= limit RETURNING``. SQLite applies it under its single
writer, PostgreSQL under the row lock with the predicate re-checked, so concurrent
requests on any number of replicas cannot overspend together. Every budget's hold and
the reservation rows (for releasing holds a crash left behind) commit together or not
at all. Measured: the same work through the async ORM cost ~4 ms CPU per request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tether.errors import StoreUnavailable
from tether.store.budgets import Hold, PeriodUsage
from tether.store.database import Database
from tether.store.driver_errors import CONNECTION_ERRORS
from tether.store.sqlite_writer import Queued, SqliteWriter

__all__ = [
    "BudgetLedger",
    "LeaseReturn",
    "LeasingLedger",
    "PostgresBudgetLedger",
    "ReservationSettled",
    "SqliteBudgetLedger",
    "open_ledger",
]

RESERVE = """
INSERT INTO budget_periods (budget_id, period_key, spent_micros, reserved_micros,
                                 spent_tokens, reserved_tokens, period_end)
VALUES ({0}, {1}, 0, {2}, 0, {3}, {4})
ON CONFLICT (budget_id, period_key) DO UPDATE
SET reserved_micros = budget_periods.reserved_micros + excluded.reserved_micros,
    reserved_tokens = budget_periods.reserved_tokens + excluded.reserved_tokens
WHERE ({5} IS NULL OR budget_periods.spent_micros + budget_periods.reserved_micros
                       + excluded.reserved_micros <= {5})
  AND ({6} IS NULL OR budget_periods.spent_tokens + budget_periods.reserved_tokens
                       + excluded.reserved_tokens <= {6})
RETURNING budget_periods.budget_id, budget_periods.period_key, budget_periods.spent_micros,
          budget_periods.reserved_micros, budget_periods.spent_tokens,
          budget_periods.reserved_tokens, budget_periods.period_end
"""
OPEN_PERIOD = """
INSERT INTO budget_periods (budget_id, period_key, spent_micros, reserved_micros,
                            spent_tokens, reserved_tokens, period_end)
VALUES ({0}, {1}, 0, {2}, 0, {3}, {4})
ON CONFLICT (budget_id, period_key) DO NOTHING
"""
"""A period's first reservation, when no one can have charged it yet: nothing read back."""

HOLD = """
INSERT INTO budget_reservations (id, budget_id, period_key, micros, tokens, expires_at)
VALUES ({0}, {1}, {2}, {3}, {4}, {5})
"""
HOLD_RESERVED = """
INSERT INTO budget_reservations (id, budget_id, period_key, micros, tokens, expires_at)
SELECT {0}, budget_id, period_key, {1}, {2}, {3} FROM reserved
"""
"""PostgreSQL: a lease's row for what ``reserved`` (RESERVE, as a CTE) held, in the same
statement; nothing when the period refused it."""
GROW = """
UPDATE budget_reservations
SET micros = micros + {0}, tokens = tokens + {1}, expires_at = {2}, unsettled_at = NULL
WHERE id = {3} AND budget_id = {4}
RETURNING id
"""
RELEASE = """
DELETE FROM budget_reservations WHERE id = {0}
RETURNING budget_id, period_key, micros, tokens
"""
SHRINK = """
UPDATE budget_reservations
SET micros = micros - CAST({0} AS BIGINT), tokens = tokens - CAST({1} AS BIGINT),
    expires_at = {2}, unsettled_at = NULL, writes = writes + 1
WHERE id = {3} AND budget_id = {4} AND writes = {5}
RETURNING CAST({0} AS BIGINT), CAST({1} AS BIGINT)
"""
WRITES = """
SELECT writes FROM budget_reservations WHERE id = {0} AND budget_id = {1}
"""
"""A lease's write-backs so far: one more than a write-back expected, it had landed."""
DROP = """
DELETE FROM budget_reservations WHERE id = {0} AND budget_id = {1}
RETURNING micros, tokens
"""
CHARGE = """
UPDATE budget_periods
SET reserved_micros = reserved_micros - {0}, reserved_tokens = reserved_tokens - {1},
    spent_micros = spent_micros + {2}, spent_tokens = spent_tokens + {3}
WHERE budget_id = {4} AND period_key = {5}
RETURNING budget_id, period_key, spent_micros, reserved_micros, spent_tokens,
          reserved_tokens, period_end
"""
RENEW_LEASE = """
WITH shrunk AS (
  UPDATE budget_reservations
  SET micros = micros - $1::bigint, tokens = tokens - $2::bigint, expires_at = $3,
      unsettled_at = NULL, writes = writes + 1
  WHERE id = $4 AND budget_id = $5 AND writes = $9
  RETURNING 1
), charged AS (
  UPDATE budget_periods
  SET reserved_micros = reserved_micros - $1::bigint,
      reserved_tokens = reserved_tokens - $2::bigint,
      spent_micros = spent_micros + $6::bigint, spent_tokens = spent_tokens + $7::bigint
  WHERE budget_id = $5 AND period_key = $8 AND EXISTS (SELECT 1 FROM shrunk)
  RETURNING budget_id, period_key, spent_micros, reserved_micros, spent_tokens,
            reserved_tokens, period_end
)
SELECT EXISTS (SELECT 1 FROM shrunk),
       (SELECT writes FROM budget_reservations WHERE id = $4 AND budget_id = $5),
       charged.*
FROM (SELECT 1) AS one LEFT JOIN charged ON true
"""
"""PostgreSQL: SHRINK then CHARGE of one lease in one statement (one round trip, not two):
whether it was written back now, the lease's write-backs before it (NULL if the lease is
no longer held), then its period as it now stands (NULLs if none)."""
CLOSE_LEASE = """
WITH dropped AS (
  DELETE FROM budget_reservations WHERE id = $1 AND budget_id = $2 RETURNING micros, tokens
), charged AS (
  UPDATE budget_periods AS p
  SET reserved_micros = p.reserved_micros - d.micros,
      reserved_tokens = p.reserved_tokens - d.tokens,
      spent_micros = p.spent_micros + $4::bigint, spent_tokens = p.spent_tokens + $5::bigint
  FROM dropped AS d
  WHERE p.budget_id = $2 AND p.period_key = $3
)
SELECT EXISTS (SELECT 1 FROM dropped)
"""
"""PostgreSQL: DROP then CHARGE of one lease in one statement: whether it was still held."""
LOCK_LEASES = """
SELECT 1 FROM budget_reservations WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE
"""
"""PostgreSQL: the rows of leases handed back together, taken before any of their periods
(``_shares_a_period``)."""
SETTLE = """
UPDATE budget_periods
SET reserved_micros = reserved_micros - CAST({0} AS BIGINT),
    reserved_tokens = reserved_tokens - CAST({1} AS BIGINT),
    spent_micros = spent_micros + CASE
        WHEN CAST({6} AS BIGINT) IS NULL OR CAST({2} AS BIGINT) <= CAST({0} AS BIGINT)
          OR CAST({2} AS BIGINT)
             <= CAST({6} AS BIGINT) - spent_micros - reserved_micros + CAST({0} AS BIGINT)
        THEN CAST({2} AS BIGINT)
        WHEN CAST({6} AS BIGINT) - spent_micros - reserved_micros > 0
        THEN CAST({6} AS BIGINT) - spent_micros - reserved_micros + CAST({0} AS BIGINT)
        ELSE CAST({0} AS BIGINT) END,
    spent_tokens = spent_tokens + CASE
        WHEN CAST({7} AS BIGINT) IS NULL OR CAST({3} AS BIGINT) <= CAST({1} AS BIGINT)
          OR CAST({3} AS BIGINT)
             <= CAST({7} AS BIGINT) - spent_tokens - reserved_tokens + CAST({1} AS BIGINT)
        THEN CAST({3} AS BIGINT)
        WHEN CAST({7} AS BIGINT) - spent_tokens - reserved_tokens > 0
        THEN CAST({7} AS BIGINT) - spent_tokens - reserved_tokens + CAST({1} AS BIGINT)
        ELSE CAST({1} AS BIGINT) END
WHERE budget_id = {4} AND period_key = {5}
RETURNING budget_id, period_key, spent_micros, reserved_micros, spent_tokens,
          reserved_tokens, period_end
"""
"""Settling a reservation: release what it held, charge the real cost — but never past the
limit: a cost beyond what was held is charged only as far as the budget still has room
(a limit is a limit; what upstream billed beyond it is in the call's audit event)."""


def _settle_args(hold: Hold, held: tuple[int, int], micros: int, tokens: int) -> tuple[Any, ...]:
    return (
        held[0],
        held[1],
        micros,
        tokens,
        hold.budget.id,
        hold.period_key,
        hold.budget.limit_micros,
        hold.budget.limit_tokens,
    )


def _unread(template: str) -> str:
    """``template`` without its ``RETURNING`` clause, for callers that need only whether a
    row changed: SQLite's ``RETURNING`` collects its rows in a table of its own first, and
    costs about as much again as the statement it ends."""
    return template.split("RETURNING", 1)[0]


def _sql(template: str, style: str) -> str:
    count = template.count("{")
    marks = [f"?{n + 1}" if style == "qmark" else f"${n + 1}" for n in range(count)]
    return template.format(*marks)


def _fits_alone(hold: Hold) -> bool:
    limit_m, limit_t = hold.budget.limit_micros, hold.budget.limit_tokens
    return (limit_m is None or hold.micros <= limit_m) and (
        limit_t is None or hold.tokens <= limit_t
    )


def _reserve_args(hold: Hold) -> tuple[Any, ...]:
    return (
        hold.budget.id,
        hold.period_key,
        hold.micros,
        hold.tokens,
        hold.period_end,
        hold.budget.limit_micros,
        hold.budget.limit_tokens,
    )


def _named_reserve_args(hold: Hold) -> dict[str, Any]:
    """RESERVE's parameters for SQLite's named marks (its limits appear twice)."""
    return dict(zip(("b", "k", "m", "t", "e", "lm", "lt"), _reserve_args(hold), strict=True))


@dataclass(frozen=True, slots=True)
class LeaseReturn:
    """What a lease hands back to its budget period: ``spent`` is charged, ``released``
    stops being reserved; ``close`` ends the lease (releasing all it still holds),
    otherwise it is renewed until ``expires_at``."""

    lease_id: str
    budget_id: str
    period_key: str
    spent_micros: int
    spent_tokens: int
    released_micros: int
    released_tokens: int
    expires_at: int
    close: bool
    writes: int = 0
    """The lease's write-backs that landed before this one: one sent again after its reply
    was lost finds one more, and charges nothing twice."""

    def landed_before(self, writes: int | None) -> bool:
        """Whether the lease's count of write-backs shows this one landed already."""
        return writes is not None and writes == self.writes + 1


def _lock_order(back: LeaseReturn) -> tuple[str, str]:
    return back.budget_id, back.period_key


def _shares_a_period(returns: Sequence[LeaseReturn]) -> bool:
    """Two leases on one period (its limit changed while a call ran on the old one): the
    first one's statement takes the period, and the second's row, taken after it, may be
    held by a call growing that lease, which waits for the period in turn."""
    periods = {(back.budget_id, back.period_key) for back in returns}
    return len(periods) < len(returns)


def _lease_row_change(back: LeaseReturn, shrink: str, drop: str) -> tuple[str, tuple[Any, ...]]:
    """The statement that shrinks (or, closing, deletes) the lease's reservation row; it
    returns what stops being reserved, or no row when the lease is no longer held (on
    SQLite a shrink returns nothing: its ``rowcount`` says whether the row was there)."""
    if back.close:
        return drop, (back.lease_id, back.budget_id)
    released = (back.released_micros, back.released_tokens)
    return shrink, (*released, back.expires_at, back.lease_id, back.budget_id, back.writes)


def _charge_args(back: LeaseReturn, released: Sequence[Any]) -> tuple[Any, ...]:
    """CHARGE's arguments: stop reserving what the lease row gave up, charge what was spent."""
    return (
        released[0],
        released[1],
        back.spent_micros,
        back.spent_tokens,
        back.budget_id,
        back.period_key,
    )


def _renew_args(back: LeaseReturn) -> tuple[Any, ...]:
    return (
        back.released_micros,
        back.released_tokens,
        back.expires_at,
        back.lease_id,
        back.budget_id,
        back.spent_micros,
        back.spent_tokens,
        back.period_key,
        back.writes,
    )


def _close_args(back: LeaseReturn) -> tuple[Any, ...]:
    return back.lease_id, back.budget_id, back.period_key, back.spent_micros, back.spent_tokens


class ReservationSettled(Exception):
    """The reservation being grown is gone: an operator settled it (a call or a lease held
    past its expiry looks unsettled). Nothing was grown; the period is as it was (before,
    its ``reserved`` kept the growth for good)."""

    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"reservation {reservation_id} was settled while it was held")
        self.reservation_id = reservation_id


class _Refused(Exception):
    def __init__(self, hold: Hold) -> None:
        self.hold = hold


class BudgetLedger(Protocol):
    async def reserve(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None: ...

    async def extend(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        """Add ``holds`` to a reservation already held, under the same limits as
        ``reserve``: all of them or none; returns the hold that did not fit. Raises
        ``ReservationSettled`` when the reservation is gone."""
        ...

    async def settle(
        self, reservation_id: str, holds: Sequence[Hold], micros: int, tokens: int
    ) -> list[PeriodUsage]:
        """Charge the real cost and give back the rest, once: holds no longer held (settled
        already, or settled by an operator once unsettled) are left alone, so a
        settlement retried after a lost answer cannot charge twice."""
        ...

    def unwritten(self, reservation_id: str) -> list[Queued[Any]]:
        """Writes a reservation's holds are still waiting for (a fresh period's lease):
        nothing may act on the reservation until they are committed."""
        ...

    async def close(self) -> None: ...


class LeasingLedger(BudgetLedger, Protocol):
    """A ledger in the database, which can also hold leases (``tether.budgets.leases``)."""

    async def lease(
        self, lease_id: str, hold: Hold, expires_at: int, *, grow: bool
    ) -> PeriodUsage | None:
        """Reserve ``hold`` under a lease (``grow``: add to the lease already held), under
        the same limits as ``reserve``; the period as it now stands, or None if refused.
        Raises ``ReservationSettled`` when the lease to grow is gone."""
        ...

    def lease_fresh(self, lease_id: str, hold: Hold, expires_at: int) -> Queued[None] | None:
        """Hand in a new lease on a period no one has charged (``Hold.fresh``) for the
        writer's next commit, without waiting for it; None where writes cannot wait (the
        caller leases as usual then)."""
        ...

    async def close_leases(self, returns: Sequence[LeaseReturn]) -> None:
        """``give_back`` for leases that end (``close``), when the caller needs no answer:
        on PostgreSQL every lease in one round trip."""
        ...

    async def give_back(self, returns: Sequence[LeaseReturn]) -> dict[str, PeriodUsage | None]:
        """Charge what leases spent and release what they did not use, in one
        transaction. By lease id, each lease still held, with its period as it now stands
        (None for a lease closed here, or written back already: its period is not read
        back); a lease no longer held (settled by an operator) is left alone and left out.
        A write-back whose ``writes`` is behind the lease's row by one had landed (its
        reply was lost): it is held, and charges nothing again. On PostgreSQL, one that
        waited for the lease's row while an earlier send of it committed reads the count
        as it was before (the statement's snapshot): ``StoreUnavailable``, and the whole
        transaction is sent again."""
        ...


class _HoldingLedger:
    """``reserve`` and ``extend`` are one transaction of conditional upserts each; only
    what happens to the reservation rows differs (inserted, or grown). A reservation row
    that exists is locked before its period, as every statement that changes both does
    (``give_back``, ``settle``): a lease grown while it is written back deadlocked."""

    async def _hold_in(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int, *, grow: bool
    ) -> tuple[Hold | None, list[PeriodUsage]]:
        raise NotImplementedError

    async def reserve(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        return (await self._hold_in(reservation_id, holds, expires_at, grow=False))[0]

    async def extend(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int
    ) -> Hold | None:
        return (await self._hold_in(reservation_id, holds, expires_at, grow=True))[0]

    async def lease(
        self, lease_id: str, hold: Hold, expires_at: int, *, grow: bool
    ) -> PeriodUsage | None:
        refused, usages = await self._hold_in(lease_id, [hold], expires_at, grow=grow)
        return None if refused is not None else usages[0]

    def lease_fresh(self, lease_id: str, hold: Hold, expires_at: int) -> Queued[None] | None:
        return None

    def unwritten(self, reservation_id: str) -> list[Queued[Any]]:
        return []


class SqliteBudgetLedger(_HoldingLedger):
    """SQLite: named marks for RESERVE (its limits appear twice), ``?`` elsewhere."""

    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer
        self._reserve = RESERVE.format(":b", ":k", ":m", ":t", ":e", ":lm", ":lt")
        self._hold = _sql(HOLD, "qmark")
        self._grow = _sql(GROW, "qmark")
        self._release = _sql(RELEASE, "qmark")
        self._charge = _sql(CHARGE, "qmark")
        self._settle = _sql(SETTLE, "qmark")
        self._shrink = _sql(_unread(SHRINK), "qmark")
        self._drop = _sql(DROP, "qmark")
        self._writes = _sql(WRITES, "qmark")
        self._open_period = _sql(OPEN_PERIOD, "qmark")
        self._charge_unread = _sql(_unread(CHARGE), "qmark")

    async def _hold_in(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int, *, grow: bool
    ) -> tuple[Hold | None, list[PeriodUsage]]:
        def work(conn: sqlite3.Connection) -> list[PeriodUsage]:
            usages = []
            for hold in holds:
                if not _fits_alone(hold):
                    raise _Refused(hold)
                budget_id, key, micros, tokens, *_ = _reserve_args(hold)
                if grow:
                    grown = conn.execute(
                        self._grow, (micros, tokens, expires_at, reservation_id, budget_id)
                    ).fetchone()
                    if grown is None:
                        raise ReservationSettled(reservation_id)
                row = conn.execute(self._reserve, _named_reserve_args(hold)).fetchone()
                if row is None:
                    raise _Refused(hold)
                usages.append(PeriodUsage(*row))
                if not grow:
                    conn.execute(
                        self._hold, (reservation_id, budget_id, key, micros, tokens, expires_at)
                    )
            return usages

        try:
            return None, await self._writer.transaction(work, brief=True)
        except _Refused as refused:
            return refused.hold, []

    def lease_fresh(self, lease_id: str, hold: Hold, expires_at: int) -> Queued[None] | None:
        budget_id, key, micros, tokens, end, *_ = _reserve_args(hold)

        def work(conn: sqlite3.Connection) -> None:
            opened = conn.execute(self._open_period, (budget_id, key, micros, tokens, end))
            if opened.rowcount != 1 and not self._alone_in(conn, hold):
                raise StoreUnavailable(
                    f"the budget period {key} was charged before its first lease was written; "
                    "the call was refused and the next one reads the period first"
                )
            conn.execute(self._hold, (lease_id, budget_id, key, micros, tokens, expires_at))

        return self._writer.queue(work, brief=True)

    async def give_back(self, returns: Sequence[LeaseReturn]) -> dict[str, PeriodUsage | None]:
        def work(conn: sqlite3.Connection) -> dict[str, PeriodUsage | None]:
            held: dict[str, PeriodUsage | None] = {}
            for back in sorted(returns, key=_lock_order):
                released = self._released(conn, back)
                if released is None:
                    if not back.close and back.landed_before(self._writes_of(conn, back)):
                        held[back.lease_id] = None
                    continue
                if back.close:
                    conn.execute(self._charge_unread, _charge_args(back, released))
                    held[back.lease_id] = None
                    continue
                row = conn.execute(self._charge, _charge_args(back, released)).fetchone()
                held[back.lease_id] = PeriodUsage(*row) if row is not None else None
            return held

        return await self._writer.transaction(work)

    async def close_leases(self, returns: Sequence[LeaseReturn]) -> None:
        await self.give_back(returns)

    def _writes_of(self, conn: sqlite3.Connection, back: LeaseReturn) -> int | None:
        row = conn.execute(self._writes, (back.lease_id, back.budget_id)).fetchone()
        return None if row is None else int(row[0])

    def _alone_in(self, conn: sqlite3.Connection, hold: Hold) -> bool:
        """A fresh period's row was there already: the lease is added to it, and stands
        only if the period held nothing else."""
        row = conn.execute(self._reserve, _named_reserve_args(hold)).fetchone()
        return row is not None and tuple(row[2:6]) == (0, hold.micros, 0, hold.tokens)

    def _released(self, conn: sqlite3.Connection, back: LeaseReturn) -> Sequence[int] | None:
        """What the lease's row stops reserving once shrunk (or, closing, deleted); None when
        the lease is no longer held. A shrink releases exactly what it was asked to."""
        cursor = conn.execute(*_lease_row_change(back, self._shrink, self._drop))
        if back.close:
            row = cursor.fetchone()
            return None if row is None else (row[0], row[1])
        return (back.released_micros, back.released_tokens) if cursor.rowcount == 1 else None

    async def settle(
        self, reservation_id: str, holds: Sequence[Hold], micros: int, tokens: int
    ) -> list[PeriodUsage]:
        def work(conn: sqlite3.Connection) -> list[PeriodUsage]:
            held = {
                (r[0], r[1]): (r[2], r[3]) for r in conn.execute(self._release, (reservation_id,))
            }
            usages = []
            for hold in holds:
                key = (hold.budget.id, hold.period_key)
                if key not in held:
                    continue
                row = conn.execute(
                    self._settle, _settle_args(hold, held[key], micros, tokens)
                ).fetchone()
                if row is not None:
                    usages.append(PeriodUsage(*row))
            return usages

        return await self._writer.transaction(work)

    async def close(self) -> None:
        """The writer is shared (audit, sessions): whoever made it closes it."""


class PostgresBudgetLedger(_HoldingLedger):
    """Runs on the database's driver pool (``Database.driver_pool``), shared with the
    other hot-path statements: one pool of connections per replica, not one per user."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._reserve = RESERVE.format("$1", "$2", "$3", "$4", "$5", "$6::bigint", "$7::bigint")
        self._hold = _sql(HOLD, "numeric")
        self._grow = _sql(GROW, "numeric")
        self._release = _sql(RELEASE, "numeric")
        self._settle = _sql(SETTLE, "numeric")
        self._lease = (
            f"WITH reserved AS ({self._reserve}), "
            f"held AS ({HOLD_RESERVED.format('$8', '$3', '$4', '$9')}) SELECT * FROM reserved"
        )

    async def _connection_pool(self) -> Any:
        return await self._db.driver_pool()

    async def lease(
        self, lease_id: str, hold: Hold, expires_at: int, *, grow: bool
    ) -> PeriodUsage | None:
        """A new lease is one statement, not a transaction of four round trips: a session
        with a budget of its own takes one on its first call, before the call may go on."""
        if grow:
            return await super().lease(lease_id, hold, expires_at, grow=grow)
        if not _fits_alone(hold):
            return None
        try:
            pool = await self._connection_pool()
            async with pool.acquire() as conn:
                row = await conn.fetchrow(self._lease, *_reserve_args(hold), lease_id, expires_at)
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"budgets cannot be checked: {exc!r}") from exc
        return None if row is None else PeriodUsage(*row)

    async def _hold_in(
        self, reservation_id: str, holds: Sequence[Hold], expires_at: int, *, grow: bool
    ) -> tuple[Hold | None, list[PeriodUsage]]:
        usages = []
        try:
            pool = await self._connection_pool()
            async with pool.acquire() as conn, conn.transaction():
                for hold in holds:
                    if not _fits_alone(hold):
                        raise _Refused(hold)
                    args = _reserve_args(hold)
                    if grow:
                        grown = await conn.fetchrow(
                            self._grow,
                            hold.micros,
                            hold.tokens,
                            expires_at,
                            reservation_id,
                            hold.budget.id,
                        )
                        if grown is None:
                            raise ReservationSettled(reservation_id)
                    row = await conn.fetchrow(self._reserve, *args)
                    if row is None:
                        raise _Refused(hold)
                    usages.append(PeriodUsage(*row))
                    if not grow:
                        await conn.execute(self._hold, reservation_id, *args[:4], expires_at)
        except _Refused as refused:
            return refused.hold, []
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"budgets cannot be checked: {exc!r}") from exc
        return None, usages

    async def give_back(self, returns: Sequence[LeaseReturn]) -> dict[str, PeriodUsage | None]:
        """One statement a lease, in lock order (``_lock_order``), in one transaction; the
        leases' rows first when two share a period."""
        try:
            pool = await self._connection_pool()
            async with pool.acquire() as conn, conn.transaction():
                held: dict[str, PeriodUsage | None] = {}
                if _shares_a_period(returns):
                    await conn.execute(LOCK_LEASES, [back.lease_id for back in returns])
                for back in sorted(returns, key=_lock_order):
                    if back.close:
                        if await conn.fetchval(CLOSE_LEASE, *_close_args(back)):
                            held[back.lease_id] = None
                        continue
                    written, writes, *period = await conn.fetchrow(RENEW_LEASE, *_renew_args(back))
                    if written:
                        held[back.lease_id] = PeriodUsage(*period) if period[0] else None
                    elif back.landed_before(writes):
                        held[back.lease_id] = None
                    elif writes == back.writes:
                        raise StoreUnavailable(
                            f"lease {back.lease_id}: a write-back of it was committing while "
                            "this one was made; sent again at the next flush"
                        )
                return held
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"budgets cannot be settled: {exc!r}") from exc

    async def close_leases(self, returns: Sequence[LeaseReturn]) -> None:
        """Every lease in one round trip (``executemany`` is one transaction, its
        statements sent together), in lock order."""
        try:
            pool = await self._connection_pool()
            async with pool.acquire() as conn:
                await conn.executemany(
                    CLOSE_LEASE, [_close_args(back) for back in sorted(returns, key=_lock_order)]
                )
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"budgets cannot be settled: {exc!r}") from exc

    async def settle(
        self, reservation_id: str, holds: Sequence[Hold], micros: int, tokens: int
    ) -> list[PeriodUsage]:
        try:
            pool = await self._connection_pool()
            async with pool.acquire() as conn, conn.transaction():
                held = {
                    (r[0], r[1]): (r[2], r[3])
                    for r in await conn.fetch(self._release, reservation_id)
                }
                usages = []
                for hold in holds:
                    key = (hold.budget.id, hold.period_key)
                    if key not in held:
                        continue
                    row = await conn.fetchrow(
                        self._settle, *_settle_args(hold, held[key], micros, tokens)
                    )
                    if row is not None:
                        usages.append(PeriodUsage(*row))
                return usages
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"budgets cannot be settled: {exc!r}") from exc

    async def close(self) -> None:
        """The pool is the database's: closed when it is disposed."""


def open_ledger(db: Database, writer: SqliteWriter | None) -> LeasingLedger:
    if db.is_postgres:
        return PostgresBudgetLedger(db)
    assert writer is not None, "SQLite needs the shared writer"
    return SqliteBudgetLedger(writer)
