"""The batch → agent/session/reservation map, on SQLite and PostgreSQL: settled once, and
only open batches are offered to the kill switch."""

from __future__ import annotations

from tether.records.message_batches import BatchRecord
from tether.store.database import Database
from tether.store.message_batches import MessageBatchStore


async def test_a_batch_is_settled_once_and_leaves_the_open_list(db: Database) -> None:
    store = MessageBatchStore(db)
    holds = [{"budget_id": "b1", "period_key": "d", "period_end": 1, "micros": 5, "tokens": 2}]
    await store.add(BatchRecord("msgbatch_1", "p1", "a1", "s1", "r1", holds, ["m"], 5, 1))
    await store.add(BatchRecord("msgbatch_2", "p1", "a1", "s2", None, [], ["m"], 0, 2))
    got = await store.get("msgbatch_1")
    assert got is not None and got.holds == holds and got.session_id == "s1"
    assert {b.id for b in await store.open_batches()} == {"msgbatch_1", "msgbatch_2"}
    assert await store.claim_settlement("msgbatch_1", 4)
    assert not await store.claim_settlement("msgbatch_1", 4)
    await store.mark_canceled("msgbatch_2")
    assert await store.open_batches() == []
    assert await store.get("nope") is None


async def test_a_canceled_batch_is_offered_to_the_sweep_until_settled(db: Database) -> None:
    store = MessageBatchStore(db)
    await store.add(BatchRecord("msgbatch_1", "p1", "a1", "s1", None, [], ["m"], 0, 1))
    await store.add(BatchRecord("msgbatch_2", "p1", "a1", "s1", None, [], ["m"], 0, 2))
    assert await store.canceled_unsettled() == []
    await store.mark_canceled("msgbatch_1")
    assert [b.id for b in await store.canceled_unsettled()] == ["msgbatch_1"]
    assert await store.claim_settlement("msgbatch_1", 0)
    assert await store.canceled_unsettled() == []
