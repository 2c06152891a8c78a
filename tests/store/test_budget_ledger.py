"""The budget ledger on both backends: all-or-nothing holds, settlement, crash release."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from tether.clock import now_ms
from tether.errors import BadRequest, NotFound
from tether.records.budgets import Budget, BudgetPeriod, BudgetScope
from tether.store.budget_ledger import BudgetLedger, open_ledger
from tether.store.budgets import BudgetStore, Hold
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.projects import ProjectStore
from tether.store.sqlite_writer import SqliteWriter


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[Database, BudgetStore, BudgetLedger]]:
    db = Database(database_url)
    await upgrade(db)
    writer = None if db.is_postgres else SqliteWriter(make_url(database_url).database or "")
    ledger = open_ledger(db, writer)
    yield db, BudgetStore(db), ledger
    await ledger.close()
    if writer is not None:
        await writer.close()
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


async def test_expired_holds_become_unsettled_not_spent(stores) -> None:
    db, store, ledger = stores
    _, tight = await two_budgets(db, store)
    hold = [Hold(tight, "d", None, 900_000, 0)]
    await ledger.reserve("crashed", hold, now_ms() - 1)
    (marked,) = await store.mark_unsettled(now_ms())
    assert (marked.reservation_id, marked.micros) == ("crashed", 900_000)
    assert await store.mark_unsettled(now_ms()) == [], "marked once"
    usage = await store.usage(tight.id, "d")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (0, 900_000)
    assert await ledger.reserve("next", hold, now_ms() + 60_000) is not None, "still counted"
    (listed,) = await store.unsettled([tight.id])
    assert listed.reservation_id == "crashed"


async def test_an_unsettled_hold_is_settled_by_a_late_settlement_once(stores) -> None:
    db, store, ledger = stores
    _, tight = await two_budgets(db, store)
    hold = [Hold(tight, "d", None, 900_000, 0)]
    await ledger.reserve("late", hold, now_ms() - 1)
    await store.mark_unsettled(now_ms())
    await ledger.settle("late", hold, 100_000, 0)
    usage = await store.usage(tight.id, "d")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (100_000, 0)
    assert await ledger.settle("late", hold, 100_000, 0) == [], "not charged twice"
    assert await store.unsettled([tight.id]) == []


async def test_an_operator_settles_an_unsettled_hold_at_most_at_what_it_held(stores) -> None:
    db, store, ledger = stores
    _, tight = await two_budgets(db, store)
    hold = [Hold(tight, "d", None, 900_000, 0)]
    await ledger.reserve("dead", hold, now_ms() - 1)
    await store.mark_unsettled(now_ms())
    with pytest.raises(BadRequest, match="at most"):
        await store.settle_unsettled("dead", [tight.id], 900_001)
    (settled,) = await store.settle_unsettled("dead", [tight.id], 640_000)
    assert settled.charged_micros == 640_000
    usage = await store.usage(tight.id, "d")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (640_000, 0)
    with pytest.raises(NotFound):
        await store.settle_unsettled("dead", [tight.id], 0)


async def test_a_settlement_retried_after_it_landed_charges_once(stores) -> None:
    db, store, ledger = stores
    roomy, _ = await two_budgets(db, store)
    hold = [Hold(roomy, "m", None, 500_000, 10)]
    await ledger.reserve("r", hold, now_ms() + 60_000)
    assert len(await ledger.settle("r", hold, 200_000, 5)) == 1
    assert await ledger.settle("r", hold, 200_000, 5) == []
    usage = await store.usage(roomy.id, "m")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (200_000, 0)
