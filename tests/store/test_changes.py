"""The change log as the feed reads it, on both backends: the changes past the last one
applied plus those it passed over that have landed since, in order, through the primary
key whatever the hour of changes kept."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import func, insert, select, text

from tether.clock import now_ms
from tether.errors import StoreUnavailable
from tether.store.change_feed import PAGE, ChangeFeed
from tether.store.changes import (
    Change,
    prune_changes,
    read_changes,
    recent_changes,
    record_change,
)
from tether.store.database import Database
from tether.store.missing_changes import MAX_RANGES
from tether.store.schema import change_log

KEPT = 2_000


async def test_the_feed_reads_past_its_last_change_and_the_ids_it_passed_over(
    db: Database,
) -> None:
    now = now_ms()
    old = [
        {"kind": "agent", "ref": f"old-{n}", "created_at": now - 3_000_000 + n} for n in range(KEPT)
    ]
    async with db.write() as conn:
        await conn.execute(insert(change_log), old)
        last_old = (await conn.execute(select(func.max(change_log.c.id)))).scalar_one()
        for n in range(3):
            await record_change(conn, "session", f"new-{n}")
    async with db.read() as conn:
        past = await read_changes(conn, last_old - 2)
        assert [c.ref for c in past] == [
            f"old-{KEPT - 2}",
            f"old-{KEPT - 1}",
            "new-0",
            "new-1",
            "new-2",
        ]
        newest = max(c.id for c in past)
        looked_for = [
            (last_old - 6, last_old - 5),
            (past[2].id, past[2].id),
            (newest + 1, newest + 9),
        ]
        again = await read_changes(conn, newest, looked_for)
        assert [c.ref for c in again] == [f"old-{KEPT - 7}", f"old-{KEPT - 6}", "new-0"], (
            "what landed of the ranges looked for"
        )
        first = await read_changes(conn, 0, limit=10)
        assert [c.ref for c in first] == [f"old-{n}" for n in range(10)]


async def test_the_feed_reads_through_the_primary_key_not_the_whole_log(db: Database) -> None:
    """Four times a second in every process: it walked the hour of changes kept."""
    if db.is_postgres:
        pytest.skip("PostgreSQL's planner picks by table size; SQLite's plan is fixed")
    for missing in ([], [(3, 3), (5, 8)]):
        query, params = recent_changes(10, missing, 1000)
        async with db.read() as conn:
            plan = (await conn.execute(text(f"EXPLAIN QUERY PLAN {query}"), params)).all()
        steps = [str(row[-1]) for row in plan]
        assert not [s for s in steps if s.startswith("SCAN change_log")], steps
        assert any("INTEGER PRIMARY KEY (rowid>?)" in s for s in steps), steps
        ranges_searched = any("INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in s for s in steps)
        assert bool(missing) is ranges_searched, steps


async def test_a_change_committed_after_a_later_one_was_applied_is_applied_then(
    db: Database,
) -> None:
    """PostgreSQL gives a change its id at insert; its transaction may commit after a later
    one's, long after (a stalled network). The feed looks for the id it passed over until
    it lands, however late, and applies it once: again, if a handler failed on it."""
    async with db.write() as conn:
        await record_change(conn, "agent", "before-the-start")
        start = (await conn.execute(select(func.max(change_log.c.id)))).scalar_one()
        await conn.execute(
            insert(change_log),
            [{"id": start + 2, "kind": "session", "ref": "in-a-gap-at-start", "created_at": 0},
             {"id": start + 3, "kind": "session", "ref": "newest-at-start", "created_at": 0}],
        )  # fmt: skip
    feed = ChangeFeed(db)
    applied: list[str] = []
    failed_once: list[str] = []

    async def note(change: Change) -> None:
        if change.ref == "the-late-kill" and not failed_once:
            failed_once.append(change.ref)
            raise StoreUnavailable("the session cannot be read now")
        applied.append(change.ref)

    feed.subscribe(note)
    await feed.start()
    try:
        assert feed.missing() == 1, "the id under the newest that is not there yet"
        await _insert(db, start + 5, "a-later-change")
        await feed.catch_up()
        assert applied == ["a-later-change"] and feed.missing() == 2

        await _insert(db, start + 4, "the-late-kill", (start + 1, "late-at-start"))
        with contextlib.suppress(StoreUnavailable):
            await feed.catch_up()  # or the feed's own follower met the failure first
        assert failed_once, "its handler failed: the late change is read again"
        await feed.catch_up()
        assert applied == ["a-later-change", "late-at-start", "the-late-kill"]
        assert feed.missing() == 0
        await feed.catch_up()
        assert len(applied) == 3, "each applied once"

        jump = start + 6 + 3 * MAX_RANGES
        await _insert(db, jump, "after-a-jump")
        await feed.catch_up()
        assert feed.missing() == jump - start - 6, "a bulk transaction's ids, one range"
        await _insert(db, start + 6, "a-kill-under-a-bulk-deletion")
        await feed.catch_up()
        assert applied[-1] == "a-kill-under-a-bulk-deletion"
    finally:
        await feed.stop()


async def _insert(db: Database, change_id: int, ref: str, *more: tuple[int, str]) -> None:
    """Changes with the ids given, committed together (the feed follows in the background)."""
    rows = [(change_id, ref), *more]
    async with db.write() as conn:
        await conn.execute(
            insert(change_log),
            [{"id": i, "kind": "session", "ref": r, "created_at": 0} for i, r in rows],
        )


async def test_a_change_after_the_log_was_pruned_empty_gets_an_id_past_every_earlier_one(
    db: Database,
) -> None:
    """SQLite gives a new row the largest id plus one: a log pruned empty (a quiet hour)
    handed out ids a follower had already passed, and it never read the kill or revocation
    that got one."""
    now = now_ms()
    async with db.write() as conn:
        await conn.execute(
            insert(change_log),
            [{"kind": "agent", "ref": f"old-{n}", "created_at": now - 7_200_000} for n in range(5)],
        )
        passed = (await conn.execute(select(func.max(change_log.c.id)))).scalar_one()
        await prune_changes(conn, now)
        await record_change(conn, "session", "killed-after-a-quiet-hour")
    async with db.read() as conn:
        behind = await read_changes(conn, passed)
        kept = (await conn.execute(select(func.count()).select_from(change_log))).scalar_one()
    assert [c.ref for c in behind] == ["killed-after-a-quiet-hour"]
    assert kept == 2, "the newest pruned row stays, and the new one"


async def test_a_change_after_a_burst_larger_than_a_page_is_applied_at_once(db: Database) -> None:
    """A bulk deletion records a change an approval: more than a page of them in the re-read
    window, all applied already, had filled every read, and a kill committed after them
    waited until the window passed them by (every replica, for seconds)."""
    feed = ChangeFeed(db)
    applied: list[str] = []

    async def note(change: Change) -> None:
        applied.append(change.ref)

    feed.subscribe(note)
    burst = [
        {"kind": "approval", "ref": f"grant-{n}", "created_at": now_ms()}
        for n in range(PAGE + PAGE // 2)
    ]
    async with db.write() as conn:
        await conn.execute(insert(change_log), burst)
    await feed.catch_up()
    assert applied == [row["ref"] for row in burst]

    async with db.write() as conn:
        await record_change(conn, "session", "killed-session")
    await feed.catch_up()
    assert applied[len(burst) :] == ["killed-session"]
