"""The budget ledger on both backends: all-or-nothing holds, settlement, crash release."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from tether.budgets.definitions import Budget, BudgetPeriod, BudgetScope
from tether.store.budget_ledger import BudgetLedger, open_ledger
from tether.store.budgets import BudgetStore, Hold
from tether.store.clock import now_ms
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.projects import ProjectStore
from tether.store.sqlite_writer import SqliteWriter


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[Database, BudgetStore, BudgetLedger]]:
    db = Database(database_url)
    await upgrade(db)
    writer = None if db.is_postgres else SqliteWriter(make_url(database_url).database or "")
    ledger = open_ledger(database_url, writer)
    yield db, BudgetStore(db), ledger
    await ledger.close()
    await db.dispose()


async def two_budgets(db: Database, store: BudgetStore) -> tuple[Budget, Budget]:
    project = await ProjectStore(db).create("p")
    roomy = await store.put(
        project.id, None, BudgetScope.PROJECT, BudgetPeriod.MONTHLY, 10_000_000, None, [50], "test"
    )
    tight = await store.put(
        project.id, None, BudgetScope.PROJECT, BudgetPeriod.DAILY, 1_000_000, None, [50], "test"
    )
    return roomy, tight


async def test_holds_are_all_or_nothing(stores) -> None:
    db, store, ledger = stores
    roomy, tight = await two_budgets(db, store)
    first = [Hold(roomy, "m", None, 700_000, 0), Hold(tight, "d", None, 700_000, 0)]
    assert await ledger.reserve("r1", first, now_ms() + 60_000) is None
    second = [Hold(roomy, "m", None, 700_000, 0), Hold(tight, "d", None, 700_000, 0)]
    refused = await ledger.reserve("r2", second, now_ms() + 60_000)
    assert refused is not None and refused.budget.id == tight.id
    roomy_usage = await store.usage(roomy.id, "m")
    assert roomy_usage is not None and roomy_usage.reserved_micros == 700_000, "rolled back"


async def test_settlement_charges_real_cost_and_releases_the_hold(stores) -> None:
    db, store, ledger = stores
    roomy, tight = await two_budgets(db, store)
    holds = [Hold(roomy, "m", None, 700_000, 10), Hold(tight, "d", None, 700_000, 10)]
    await ledger.reserve("r1", holds, now_ms() + 60_000)
    usages = await ledger.settle("r1", holds, 123_456, 7)
    assert [(u.spent_micros, u.reserved_micros, u.spent_tokens) for u in usages] == [
        (123_456, 0, 7),
        (123_456, 0, 7),
    ]


async def test_expired_holds_are_released_once(stores) -> None:
    db, store, ledger = stores
    _, tight = await two_budgets(db, store)
    hold = [Hold(tight, "d", None, 900_000, 0)]
    await ledger.reserve("crashed", hold, now_ms() - 1)
    assert await ledger.reserve("next", hold, now_ms() + 60_000) is not None, "still held"
    assert await store.release_expired(now_ms()) == 1
    usage = await store.usage(tight.id, "d")
    assert usage is not None and usage.reserved_micros == 0
    late = await ledger.settle("crashed", hold, 100_000, 0)
    assert (late[0].spent_micros, late[0].reserved_micros) == (100_000, 0), "not released twice"
