"""Writing leases back: a fleet of short sessions leaves hundreds of leases a second to
write back and give back. They go a chunk a transaction, so no one transaction holds the
store (and every call's commit behind it) for long; a chunk that fails loses nothing,
holds back no other and charges nothing twice. Against the real ledger on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support.databases import PG_HOST, PG_PORT, postgres_database
from tests.support.tcp_proxy import CuttableProxy
from tether.budgets.leases import FLUSH_TRANSACTIONS, GIVE_BACK_CHUNK, LeasedLedger
from tether.clock import new_id, now_ms
from tether.errors import TetherError
from tether.records.budgets import Budget, BudgetPeriod, BudgetScope
from tether.store.budget_ledger import open_ledger
from tether.store.budgets import BudgetStore, Hold
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.projects import ProjectStore
from tether.store.sqlite_writer import SqliteWriter

SESSIONS = 3 * GIVE_BACK_CHUNK + 10
HELD, SPENT = 1_000, 700
LIMIT = 1_000_000
SLICE = LIMIT // 50
"""What a lease holds: 2 % of the limit."""
FAILING_PERIOD = f"session:{2 * GIVE_BACK_CHUNK + 3}"

FAIL_SQLITE = f"""
CREATE TRIGGER fail_one_period BEFORE UPDATE ON budget_periods
WHEN NEW.period_key = '{FAILING_PERIOD}'
BEGIN SELECT RAISE(ABORT, 'this period cannot be written'); END
"""
FAIL_POSTGRES = [
    f"""
    CREATE FUNCTION fail_one_period() RETURNS trigger AS $$
    BEGIN
      IF NEW.period_key = '{FAILING_PERIOD}' THEN
        RAISE EXCEPTION 'this period cannot be written';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER fail_one_period BEFORE UPDATE ON budget_periods
    FOR EACH ROW EXECUTE FUNCTION fail_one_period()
    """,
]


@dataclass
class Fleet:
    db: Database
    writer: SqliteWriter | None
    leases: LeasedLedger
    budgets: BudgetStore
    budget: Budget

    def hold(self, session: int) -> Hold:
        return Hold(self.budget, f"session:{session}", None, HELD, 0)

    async def one_call_each(self, sessions: int = SESSIONS) -> None:
        """Each session makes one call that spends ``SPENT`` of its own lease."""
        for session in range(sessions):
            call = new_id()
            assert await self.leases.reserve(call, [self.hold(session)], now_ms() + 60_000) is None
            await self.leases.settle(call, [self.hold(session)], SPENT, 0)

    async def spent_and_reserved(self, sessions: int = SESSIONS) -> list[tuple[int, int]]:
        usages = [await self.budgets.usage(self.budget.id, f"session:{n}") for n in range(sessions)]
        return [(u.spent_micros, u.reserved_micros) if u else (0, 0) for u in usages]

    async def fail_one_period(self, failing: bool) -> None:
        async with self.db.write() as conn:
            if not failing:
                await conn.execute(
                    text(
                        "DROP TRIGGER fail_one_period"
                        + ("" if self.writer else " ON budget_periods")
                    )
                )
            elif self.writer is not None:
                await conn.execute(text(FAIL_SQLITE))
            else:
                for statement in FAIL_POSTGRES:
                    await conn.execute(text(statement))


@asynccontextmanager
async def fleet(
    database_url: str, idle_ms: int = 3_600_000, session_write_back_ms: int | None = 0
) -> AsyncIterator[Fleet]:
    """Leases never idle, each written back at every flush, unless told otherwise."""
    db = Database(database_url)
    await upgrade(db)
    writer = None if db.is_postgres else SqliteWriter(make_url(database_url).database or "")
    leases = LeasedLedger(
        open_ledger(db, writer),
        2.0,
        60_000,
        idle_ms=idle_ms,
        session_write_back_ms=session_write_back_ms,
    )
    budgets = BudgetStore(db)
    try:
        project = await ProjectStore(db).create(f"p{new_id()}")
        budget = await budgets.put(
            project.id, None, BudgetScope.PROJECT, BudgetPeriod.SESSION, LIMIT, None, [], "t"
        )
        yield Fleet(db, writer, leases, budgets, budget)
    finally:
        await leases.close()
        if writer is not None:
            await writer.close()
        await db.dispose()


def test_many_leases_are_written_back_a_chunk_a_transaction(database_url: str) -> None:
    async def scenario() -> None:
        async with fleet(database_url) as sessions:
            await sessions.one_call_each()
            commits = sessions.writer.commits if sessions.writer else 0
            await sessions.leases.flush()
            assert await sessions.spent_and_reserved() == [(SPENT, SLICE - SPENT)] * SESSIONS
            if sessions.writer is not None:
                transactions = sessions.writer.commits - commits
                assert transactions == math.ceil(SESSIONS / GIVE_BACK_CHUNK), transactions
            await sessions.leases.flush(closing=True)
            assert await sessions.spent_and_reserved() == [(SPENT, 0)] * SESSIONS

    asyncio.run(scenario())


def test_a_backlog_of_leases_goes_back_in_a_few_larger_chunks(database_url: str) -> None:
    """More leases than ``FLUSH_TRANSACTIONS`` chunks of sixteen are written back, then
    given back, in that many larger transactions: a chunk of sixteen at a time, written
    one after another, kept up with only a few hundred new sessions a second, and the
    leases waiting to go back grew without bound."""
    backlog = 4 * FLUSH_TRANSACTIONS * GIVE_BACK_CHUNK

    async def scenario() -> None:
        async with fleet(database_url) as sessions:
            await sessions.one_call_each(backlog)
            for closing, reserved in ((False, SLICE - SPENT), (True, 0)):
                commits = sessions.writer.commits if sessions.writer else 0
                await sessions.leases.flush(closing=closing)
                assert await sessions.spent_and_reserved(backlog) == [(SPENT, reserved)] * backlog
                if sessions.writer is not None:
                    transactions = sessions.writer.commits - commits
                    assert transactions == FLUSH_TRANSACTIONS, (closing, transactions)

    asyncio.run(scenario())


def test_a_chunk_that_cannot_be_written_loses_nothing_and_charges_nothing_twice(
    database_url: str,
) -> None:
    """The chunk with a period the database refuses stays for the next flush; the chunks
    before and after it are written, once."""
    failing = int(FAILING_PERIOD.removeprefix("session:")) // GIVE_BACK_CHUNK
    refused = range(failing * GIVE_BACK_CHUNK, (failing + 1) * GIVE_BACK_CHUNK)

    async def scenario() -> None:
        async with fleet(database_url) as sessions:
            await sessions.one_call_each()
            await sessions.fail_one_period(True)
            with pytest.raises(TetherError):
                await sessions.leases.flush()
            written = await sessions.spent_and_reserved()
            assert [n for n, state in enumerate(written) if state == (0, SLICE)] == list(refused)
            assert all(
                state == (SPENT, SLICE - SPENT)
                for n, state in enumerate(written)
                if n not in refused
            ), "every other chunk is written back"
            await sessions.fail_one_period(False)
            await sessions.leases.flush()
            assert await sessions.spent_and_reserved() == [(SPENT, SLICE - SPENT)] * SESSIONS
            await sessions.leases.flush(closing=True)
            assert await sessions.spent_and_reserved() == [(SPENT, 0)] * SESSIONS

    asyncio.run(scenario())


IDLE_MS = 300


def test_a_sessions_idle_lease_goes_back_once_with_what_it_spent(database_url: str) -> None:
    """A session whose call is over: its lease is not written back at the next flush (only
    that session charges its period, and the lease stays reserved meanwhile) but given
    back once idle, charging what it spent in the same statements: one transaction, not
    two. A daily period's lease, which every session charges, is written back at once."""

    async def scenario() -> None:
        async with fleet(database_url, IDLE_MS, session_write_back_ms=None) as sessions:
            daily = await sessions.budgets.put(
                sessions.budget.project_id, None, BudgetScope.PROJECT, BudgetPeriod.DAILY,
                LIMIT, None, [], "t",
            )  # fmt: skip
            today = Hold(daily, "today", None, HELD, 0)
            call = new_id()
            holds = [sessions.hold(0), today]
            assert await sessions.leases.reserve(call, holds, now_ms() + 60_000) is None
            await sessions.leases.settle(call, holds, SPENT, 0)

            await sessions.leases.flush()
            assert await sessions.spent_and_reserved(1) == [(0, SLICE)], "still reserved"
            usage = await sessions.budgets.usage(daily.id, "today")
            assert usage is not None
            assert (usage.spent_micros, usage.reserved_micros) == (SPENT, SLICE - SPENT)

            await asyncio.sleep(IDLE_MS / 1000)
            commits = sessions.writer.commits if sessions.writer else 0
            await sessions.leases.flush()
            assert await sessions.spent_and_reserved(1) == [(SPENT, 0)], "given back, charged"
            if sessions.writer is not None:
                assert sessions.writer.commits - commits == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("closing", "cancelled"),
    [(False, False), (True, False), (False, True)],
    ids=["renewed", "given-back", "flush-cancelled"],
)
def test_a_write_back_whose_reply_is_lost_charges_once(closing: bool, cancelled: bool) -> None:
    """PostgreSQL: a write-back commits and its reply is lost on the way (the connection
    drops), or the flush waiting for it is cancelled (tether stopping). The next flush
    sends the write-back again: it must not charge the period twice, nor shrink the lease
    twice, whether the lease is renewed (and spends more meanwhile) or given back."""
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()

    async def scenario(url: str) -> None:
        async with fleet(url) as sessions:
            await sessions.one_call_each(2)
            if cancelled:
                proxy.hold_reply_to(b"COMMIT", 1.0)
                flush = asyncio.create_task(sessions.leases.flush())
                while not proxy.fault_taken.is_set():
                    await asyncio.sleep(0.01)
                flush.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await flush
                await asyncio.sleep(1.5)
            else:
                proxy.lose_reply_to(b"COMMIT")
                with pytest.raises(TetherError):
                    await sessions.leases.flush()
            assert proxy.fault_taken.is_set()
            assert await sessions.spent_and_reserved(2) == [(SPENT, SLICE - SPENT)] * 2, (
                "the write-back committed"
            )
            if closing:
                await sessions.leases.flush(closing=True)
                assert await sessions.spent_and_reserved(2) == [(SPENT, 0)] * 2
                return
            await sessions.one_call_each(2)
            await sessions.leases.flush()
            spent = 2 * SPENT
            assert await sessions.spent_and_reserved(2) == [(spent, SLICE - spent)] * 2
            await sessions.leases.flush(closing=True)
            assert await sessions.spent_and_reserved(2) == [(spent, 0)] * 2

    try:
        with postgres_database(migrated=True) as url:
            asyncio.run(scenario(url.replace(f":{PG_PORT}/", f":{proxy.port}/")))
    finally:
        proxy.close()
