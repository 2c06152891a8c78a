"""Property: however concurrent streams interleave — reserving, covering their output an
increment at a time, settling at a real cost that may exceed what they held — a budget
never records more than its limit and its ``reserved`` never goes below zero. Against the
real ledger on SQLite and PostgreSQL, with and without per-process leases."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from tether.budgets.leases import LeasedLedger
from tether.clock import new_id, now_ms
from tether.records.budgets import BudgetPeriod, BudgetScope
from tether.store.budget_ledger import BudgetLedger, open_ledger
from tether.store.budgets import BudgetStore, Hold
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.projects import ProjectStore
from tether.store.sqlite_writer import SqliteWriter

LIMIT = 1_000_000


@dataclass
class Stream:
    reserve: int
    increments: list[int]
    real_cost: int
    steps_done: int = 0
    held: bool = False
    refused: bool = False
    ids: list[str] = field(default_factory=list)


streams = st.lists(
    st.builds(
        Stream,
        reserve=st.integers(1, 400_000),
        increments=st.lists(st.integers(1, 300_000), max_size=4),
        real_cost=st.integers(0, 900_000),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture
def migrated(database_url: str) -> str:
    async def migrate() -> None:
        db = Database(database_url)
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    return database_url


async def _run(url: str, leased: bool, plan: list[Stream], order: list[int]) -> None:
    db = Database(url)
    writer = None if db.is_postgres else SqliteWriter(make_url(url).database or "")
    database_ledger = open_ledger(db, writer)
    ledger: BudgetLedger = (
        LeasedLedger(database_ledger, 20.0, 60_000) if leased else database_ledger
    )
    store = BudgetStore(db)
    try:
        project = await ProjectStore(db).create(f"p{new_id()}")
        budget = await store.put(
            project.id, None, BudgetScope.PROJECT, BudgetPeriod.DAILY, LIMIT, None, [], "t"
        )

        def hold(micros: int) -> Hold:
            return Hold(budget, "d", None, micros, 0)

        async def step(stream: Stream) -> None:
            """One more step of ``stream``: reserve, cover the next increment, or settle."""
            rid = f"r{id(stream)}"
            at = now_ms() + 60_000
            if stream.steps_done == 0:
                stream.held = await ledger.reserve(rid, [hold(stream.reserve)], at) is None
                stream.refused = not stream.held
            elif stream.held and stream.steps_done <= len(stream.increments):
                increment = stream.increments[stream.steps_done - 1]
                if await ledger.extend(rid, [hold(increment)], at) is not None:
                    stream.steps_done = len(stream.increments)  # cut: settle next
            elif stream.held:
                await ledger.settle(rid, [hold(stream.reserve)], stream.real_cost, 0)
                stream.held = False
            stream.steps_done += 1

        async def check() -> None:
            if isinstance(ledger, LeasedLedger):
                await ledger.flush()
            usage = await store.usage(budget.id, "d")
            if usage is not None:
                assert usage.reserved_micros >= 0, usage
                assert usage.spent_micros + usage.reserved_micros <= LIMIT, usage

        for n in order:
            # several streams step at once: their awaits interleave on the loop
            batch = [plan[(n + k) % len(plan)] for k in range(1 + n % 3)]
            await asyncio.gather(*(step(stream) for stream in {id(s): s for s in batch}.values()))
            await check()
        for stream in plan:
            while stream.held or stream.steps_done == 0:
                await step(stream)
        await check()
        if isinstance(ledger, LeasedLedger):
            await ledger.flush(closing=True)
        usage = await store.usage(budget.id, "d")
        assert usage is not None
        assert usage.reserved_micros == 0
        assert 0 <= usage.spent_micros <= LIMIT
        if all(stream.real_cost <= stream.reserve for stream in plan):
            expected = sum(s.real_cost for s in plan if not s.refused)
            assert usage.spent_micros == expected, "within what was held, the real cost"
    finally:
        await ledger.close()
        if writer is not None:
            await writer.close()
        await db.dispose()


@pytest.mark.parametrize("leased", [False, True], ids=["per-call", "leased"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=streams, order=st.lists(st.integers(0, 50), max_size=40))
def test_no_interleaving_overspends_or_goes_negative(
    migrated: str, leased: bool, plan: list[Stream], order: list[int]
) -> None:
    for stream in plan:
        stream.steps_done, stream.held, stream.refused = 0, False, False
    asyncio.run(_run(migrated, leased, plan, order))
