"""The budget ledger on both backends: all-or-nothing holds, settlement, crash release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support.databases import PG_HOST, PG_PORT
from tests.support.tcp_proxy import CuttableProxy
from tether.budgets.leases import LeasedLedger
from tether.clock import now_ms
from tether.errors import BadRequest, NotFound, StoreUnavailable, TetherError
from tether.records.budgets import Budget, BudgetPeriod, BudgetScope
from tether.store.budget_ledger import (
    BudgetLedger,
    LeaseReturn,
    LeasingLedger,
    ReservationSettled,
    open_ledger,
)
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


async def test_a_lease_write_back_sent_again_after_it_landed_charges_once(stores) -> None:
    """Its commit landed and its reply was lost: sent again as it was, it finds the lease's
    count of write-backs one ahead, is told the lease is held, and charges nothing more.
    One that names a count the row never had is not held (its lease is forgotten)."""
    db, store, ledger = stores
    _, tight = await two_budgets(db, store)
    expires = now_ms() + 60_000
    assert await ledger.lease("l", Hold(tight, "d", None, 10_000, 0), expires, grow=False)
    back = LeaseReturn("l", tight.id, "d", 700, 0, 700, 0, expires, False, writes=0)
    assert "l" in await ledger.give_back([back])
    assert await ledger.give_back([back]) == {"l": None}, "landed before"
    usage = await store.usage(tight.id, "d")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (700, 9_300)
    stale = LeaseReturn("l", tight.id, "d", 700, 0, 700, 0, expires, False, writes=5)
    assert await ledger.give_back([stale]) == {}
    next_one = LeaseReturn("l", tight.id, "d", 300, 0, 300, 0, expires, False, writes=1)
    assert "l" in await ledger.give_back([next_one])
    usage = await store.usage(tight.id, "d")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (1_000, 9_000)


async def test_growing_a_reservation_an_operator_settled_changes_nothing(stores) -> None:
    """A call held past its expiry looks unsettled; an operator settles it while its answer
    still streams. Growing it then is refused and leaves the period as the operator did
    (it used to keep the growth reserved for good)."""
    db, store, ledger = stores
    _, tight = await two_budgets(db, store)
    await ledger.reserve("slow", [Hold(tight, "d", None, 100_000, 0)], now_ms() - 1)
    await store.mark_unsettled(now_ms())
    await store.settle_unsettled("slow", [tight.id], 40_000)
    with pytest.raises(ReservationSettled):
        await ledger.extend("slow", [Hold(tight, "d", None, 50_000, 0)], now_ms() + 60_000)
    usage = await store.usage(tight.id, "d")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (40_000, 0)


SLICE = 20_000
"""What a lease holds of the tight budget: 2 % of its $1."""


@dataclass
class LeasedBudget:
    """The tight budget served through leases, as a process sees it, and an operator
    settling a lease that looks unsettled."""

    db: Database
    store: BudgetStore
    budget: Budget
    leases: LeasedLedger

    def hold(self, micros: int) -> Hold:
        return Hold(self.budget, "d", None, micros, 0)

    async def take(self, call: str, micros: int) -> None:
        assert await self.leases.reserve(call, [self.hold(micros)], now_ms() + 60_000) is None

    async def call(self, call: str, micros: int, cost: int) -> None:
        await self.take(call, micros)
        await self.leases.settle(call, [self.hold(micros)], cost, 0)

    async def spent_and_reserved(self) -> tuple[int, int]:
        usage = await self.store.usage(self.budget.id, "d")
        assert usage is not None
        return usage.spent_micros, usage.reserved_micros

    async def operator_settles_the_lease(self) -> None:
        """The lease looks unsettled (its process stalled past its expiry); an operator
        settles it as reserved."""
        await self.store.mark_unsettled(now_ms() + 120_000)
        (stalled,) = await self.store.unsettled([self.budget.id])
        await self.store.settle_unsettled(stalled.reservation_id, [self.budget.id], None)


async def leased_budget(stores: tuple[Database, BudgetStore, BudgetLedger]) -> LeasedBudget:
    db, store, database_ledger = stores
    _, tight = await two_budgets(db, store)
    leasing = cast(LeasingLedger, database_ledger)
    return LeasedBudget(db, store, tight, LeasedLedger(leasing, 2.0, 60_000))


async def test_a_lease_an_operator_settled_is_replaced_and_leaks_nothing(stores) -> None:
    """A process that stalled past its lease's expiry finds its lease settled when it next
    grows it: a new lease serves the call, and once every lease is given back the period
    holds nothing."""
    tight = await leased_budget(stores)
    await tight.call("first", 1_000, 700)
    await tight.operator_settles_the_lease()
    await tight.take("second", 2 * SLICE)
    spent, reserved = await tight.spent_and_reserved()
    assert spent == SLICE, "the operator charged the lease"
    assert 2 * SLICE <= reserved < 3 * SLICE, "a new lease serves the call"
    await tight.leases.settle("second", [tight.hold(2 * SLICE)], 30_000, 0)
    await tight.leases.flush(closing=True)
    assert await tight.spent_and_reserved() == (SLICE + 30_000, 0)


async def test_a_settled_lease_is_forgotten_at_its_write_back_not_served_from(stores) -> None:
    """A call that fits in what a settled lease still had in memory is served from a new
    lease, reserved in the database, not from room the database no longer holds."""
    tight = await leased_budget(stores)
    await tight.call("first", 1_000, 700)
    await tight.operator_settles_the_lease()
    await tight.leases.flush()
    await tight.take("second", 1_000)
    assert await tight.spent_and_reserved() == (
        SLICE,
        SLICE,
    ), "the operator charged the old lease; a new one serves the call"
    await tight.leases.settle("second", [tight.hold(1_000)], 600, 0)
    await tight.leases.flush(closing=True)
    assert await tight.spent_and_reserved() == (SLICE + 600, 0)


async def test_a_call_running_on_a_lease_settled_meanwhile_is_charged_to_the_next(stores) -> None:
    """What a lease spent until tether learns an operator settled it is the operator's to
    decide; a call that ends after that is charged to the lease serving the period next."""
    tight = await leased_budget(stores)
    await tight.call("done", 1_000, 700)
    await tight.take("running", 1_000)
    await tight.operator_settles_the_lease()
    await tight.leases.flush()
    await tight.leases.settle("running", [tight.hold(1_000)], 800, 0)
    await tight.leases.flush(closing=True)
    assert await tight.spent_and_reserved() == (
        SLICE + 800,
        0,
    ), "what the call spent after the settlement is charged"


async def test_a_stream_that_spans_a_settled_lease_and_its_replacement_is_charged_once(
    stores,
) -> None:
    tight = await leased_budget(stores)
    await tight.call("done", 1_000, 700)
    await tight.take("stream", 1_000)
    await tight.operator_settles_the_lease()
    await tight.leases.flush()
    assert await tight.leases.extend("stream", [tight.hold(500)], now_ms() + 60_000) is None
    await tight.leases.settle("stream", [tight.hold(1_500)], 800, 0)
    await tight.leases.flush(closing=True)
    assert await tight.spent_and_reserved() == (SLICE + 800, 0)


FAIL_LEASES_SQLITE = """
CREATE TRIGGER no_new_leases BEFORE INSERT ON budget_reservations
BEGIN SELECT RAISE(ABORT, 'no new reservations'); END
"""
FAIL_LEASES_POSTGRES = [
    """
    CREATE FUNCTION no_new_leases() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'no new reservations'; END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER no_new_leases BEFORE INSERT ON budget_reservations
    FOR EACH ROW EXECUTE FUNCTION no_new_leases()
    """,
]


async def test_a_settlement_the_store_fails_midway_is_kept_for_the_retry(stores) -> None:
    """Charging a call whose lease was settled needs a new lease; when the store refuses
    it, the call's cost stays to be charged by the retry, not dropped."""
    tight = await leased_budget(stores)
    db = tight.db
    await tight.call("done", 1_000, 700)
    await tight.take("running", 1_000)
    await tight.operator_settles_the_lease()
    await tight.leases.flush()
    async with db.write() as conn:
        for statement in FAIL_LEASES_POSTGRES if db.is_postgres else [FAIL_LEASES_SQLITE]:
            await conn.execute(text(statement))
    with pytest.raises(TetherError):
        await tight.leases.settle("running", [tight.hold(1_000)], 800, 0)
    async with db.write() as conn:
        await conn.execute(
            text(
                "DROP TRIGGER no_new_leases" + (" ON budget_reservations" if db.is_postgres else "")
            )
        )
    await tight.leases.settle("running", [tight.hold(1_000)], 800, 0)
    await tight.leases.flush(closing=True)
    assert await tight.spent_and_reserved() == (SLICE + 800, 0)


async def test_a_fresh_lease_stands_only_on_a_period_nothing_else_holds(stores) -> None:
    """A new session's first lease is written without reading its period first: a period
    found already there takes it only when empty; one something else holds refuses the
    call and keeps what it held."""
    db, store, ledger = stores
    if db.is_postgres:
        pytest.skip("PostgreSQL leases in a statement of its own (no deferred write)")
    _, tight = await two_budgets(db, store)
    leasing = cast(LeasingLedger, ledger)
    expires = now_ms() + 60_000

    new = leasing.lease_fresh("l-new", Hold(tight, "s-new", None, 5_000, 7), expires)
    assert new is not None
    await new.result()
    usage = await store.usage(tight.id, "s-new")
    assert usage is not None
    assert (usage.spent_micros, usage.reserved_micros, usage.reserved_tokens) == (0, 5_000, 7)

    assert await ledger.reserve("r-held", [Hold(tight, "s-held", None, 1_000, 0)], expires) is None
    held = leasing.lease_fresh("l-held", Hold(tight, "s-held", None, 5_000, 0), expires)
    assert held is not None
    with pytest.raises(StoreUnavailable, match="charged before its first lease"):
        await held.result()
    usage = await store.usage(tight.id, "s-held")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (0, 1_000)

    await ledger.settle("r-held", [Hold(tight, "s-held", None, 1_000, 0)], 0, 0)
    emptied = leasing.lease_fresh("l-empty", Hold(tight, "s-held", None, 5_000, 0), expires)
    assert emptied is not None
    await emptied.result()
    usage = await store.usage(tight.id, "s-held")
    assert usage is not None and (usage.spent_micros, usage.reserved_micros) == (0, 5_000)


@dataclass
class CountedLedger:
    """A PostgreSQL ledger whose every round trip passes a proxy that counts them."""

    db: Database
    budget: Budget
    ledger: LeasingLedger
    proxy: CuttableProxy

    def round_trips(self) -> int:
        return self.proxy.reads_from_clients


@asynccontextmanager
async def counted_ledger(postgres_url: str) -> AsyncIterator[CountedLedger]:
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    db = Database(postgres_url.replace(f":{PG_PORT}/", f":{proxy.port}/"))
    try:
        _, tight = await two_budgets(db, BudgetStore(db))
        yield CountedLedger(db, tight, cast(LeasingLedger, open_ledger(db, None)), proxy)
    finally:
        await db.dispose()
        proxy.close()


async def test_on_postgresql_a_new_lease_is_one_round_trip_and_a_refused_one_holds_nothing(
    postgres_url: str,
) -> None:
    """A session with a budget of its own takes a lease on its first call, before the call
    may go on: a transaction of four round trips (begin, reserve, hold, commit) was four
    waits on the network for every new conversation."""
    async with counted_ledger(postgres_url) as counted:
        db, tight, ledger = counted.db, counted.budget, counted.ledger
        expires = now_ms() + 60_000
        assert await ledger.lease("warm", Hold(tight, "d", None, 1_000, 0), expires, grow=False)
        before = counted.round_trips()
        for n in range(5):
            seen = await ledger.lease(
                f"l{n}", Hold(tight, "d", None, 100_000, 0), expires, grow=False
            )
            assert seen is not None and seen.reserved_micros == 1_000 + (n + 1) * 100_000
        round_trips = counted.round_trips() - before

        refused = await ledger.lease(
            "over", Hold(tight, "d", None, 600_000, 0), expires, grow=False
        )
        usage = await BudgetStore(db).usage(tight.id, "d")
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM budget_reservations"))).scalar()
    assert round_trips == 5
    assert refused is None and usage is not None and usage.reserved_micros == 501_000
    assert rows == 6, "the refused lease left no row"


async def test_on_postgresql_leases_go_back_in_one_round_trip_and_renew_in_one_a_lease(
    postgres_url: str,
) -> None:
    """A fleet of short sessions gives back a lease a session a few seconds after its last
    call: two statements a lease, each a round trip, were most of what PostgreSQL did for
    a new conversation (each session's lease on a period of its own). A lease an operator
    settled meanwhile is left alone."""
    async with counted_ledger(postgres_url) as counted:
        db, tight, ledger = counted.db, counted.budget, counted.ledger
        expires = now_ms() + 60_000
        for n in range(6):
            hold = Hold(tight, f"s{n}", None, 50_000, 0)
            await ledger.lease(f"l{n}", hold, expires, grow=False)

        def back(n: int, close: bool) -> LeaseReturn:
            return LeaseReturn(f"l{n}", tight.id, f"s{n}", 1_000 * (n + 1), 0, 0, 0, expires, close)

        await ledger.give_back([back(0, False)])
        before = counted.round_trips()
        renewed = await ledger.give_back([back(n, False) for n in (1, 2, 3)])
        renewing = counted.round_trips() - before

        await ledger.close_leases([back(0, True)])
        before = counted.round_trips()
        await ledger.close_leases([back(n, True) for n in (1, 2, 3, 4, 5, 99)])
        closing = counted.round_trips() - before
        usages = [await BudgetStore(db).usage(tight.id, f"s{n}") for n in range(6)]
    assert renewing == 2 + 3, "begin, a statement a lease, commit"
    assert sorted(renewed) == ["l1", "l2", "l3"]
    assert closing == 1
    assert all(usage is not None and usage.reserved_micros == 0 for usage in usages)
    renewals, closes = 1_000 * (1 + 2 + 3 + 4), 1_000 * (1 + 2 + 3 + 4 + 5 + 6)
    assert sum(usage.spent_micros for usage in usages if usage) == renewals + closes


async def test_on_postgresql_a_lease_grown_while_it_is_written_back_never_deadlocks(
    postgres_url: str,
) -> None:
    """A call grows its process's lease (the budget's tail) while the flush writes the same
    lease back, on two connections: each must take the lease's row and its period in the
    same order, or PostgreSQL breaks the deadlock by refusing one, and a call is answered
    503 (seen behind a balancer, two replicas sharing a budget)."""
    async with counted_ledger(postgres_url) as counted:
        tight, ledger = counted.budget, counted.ledger
        expires = now_ms() + 60_000
        assert await ledger.lease("l", Hold(tight, "d", None, 1_000, 0), expires, grow=False)

        async def grow() -> None:
            for _ in range(150):
                assert await ledger.lease("l", Hold(tight, "d", None, 1, 0), expires, grow=True)

        written = _WriteBacks()

        async def write_back() -> None:
            for _ in range(150):
                async with written.one_at_a_time:
                    back = LeaseReturn("l", tight.id, "d", 1, 0, 1, 0, expires, False, written["l"])
                    assert "l" in await ledger.give_back([back])
                    written["l"] += 1

        await asyncio.gather(grow(), write_back(), grow(), write_back())
        usage = await BudgetStore(counted.db).usage(tight.id, "d")
    assert usage is not None
    assert (usage.spent_micros, usage.reserved_micros) == (300, 1_000)


async def test_on_postgresql_two_leases_on_one_period_written_back_while_one_grows_never_deadlock(
    postgres_url: str,
) -> None:
    """A budget's limit changed while a stream ran: the process holds the old lease and a new
    one on the same period, and one flush writes both back while a call grows the second. The
    flush must not hold the period while it waits for the second lease's row (the call holds
    that row and waits for the period): PostgreSQL would refuse one of them."""
    async with counted_ledger(postgres_url) as counted:
        tight, ledger = counted.budget, counted.ledger
        expires = now_ms() + 60_000
        for lease in ("l1", "l2"):
            assert await ledger.lease(lease, Hold(tight, "d", None, 1_000, 0), expires, grow=False)

        async def grow() -> None:
            for _ in range(150):
                assert await ledger.lease("l2", Hold(tight, "d", None, 1, 0), expires, grow=True)

        written = _WriteBacks()

        async def write_back() -> None:
            for _ in range(150):
                async with written.one_at_a_time:
                    backs = [
                        LeaseReturn(
                            lease, tight.id, "d", 1, 0, 1, 0, expires, False, written[lease]
                        )
                        for lease in ("l1", "l2")
                    ]
                    assert set(await ledger.give_back(backs)) == {"l1", "l2"}
                    for lease in ("l1", "l2"):
                        written[lease] += 1

        await asyncio.gather(grow(), write_back(), grow(), write_back())
        usage = await BudgetStore(counted.db).usage(tight.id, "d")
    assert usage is not None
    assert (usage.spent_micros, usage.reserved_micros) == (600, 1_700)


class _WriteBacks(dict[str, int]):
    """Write-backs landed by lease, one at a time as a process's flush sends them (each
    names the count before it): the calls growing the lease meanwhile are what contend."""

    def __init__(self) -> None:
        super().__init__()
        self.one_at_a_time = asyncio.Lock()

    def __missing__(self, lease: str) -> int:
        return 0
