"""The store on both backends: migrations, uniqueness, keys, sessions, audit, change feed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text

from tether.audit.appender import AuditAppender, open_appender
from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.audit.normalise import normalised_row
from tether.audit.table import AuditStore
from tether.errors import Conflict, NotFound, StoreUnavailable
from tether.guards.settings import GuardSettings, OnTrip, load_guard_settings
from tether.records.fleet import ActivityDelta, AgentState
from tether.store.agents import AgentStore
from tether.store.approvals import (
    APPROVED,
    DENIED,
    PENDING,
    USED,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalStore,
)
from tether.store.change_feed import ChangeFeed
from tether.store.changes import Change
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.projects import ProjectStore
from tether.store.sessions import SessionStore


def appender_for(database_url: str) -> AuditAppender:
    from sqlalchemy.engine import make_url

    from tether.store.sqlite_writer import SqliteWriter

    if database_url.startswith("postgresql"):
        return open_appender(database_url, None)
    return open_appender(database_url, SqliteWriter(make_url(database_url).database or ""))


async def test_migrations_run_on_an_empty_database_and_are_idempotent(
    empty_database_url: str,
) -> None:
    database = Database(empty_database_url)
    try:
        await upgrade(database)
        await upgrade(database)
        assert await ProjectStore(database).all() == []
    finally:
        await database.dispose()


async def test_project_names_are_unique(db: Database) -> None:
    projects = ProjectStore(db)
    await projects.create("p")
    with pytest.raises(Conflict, match="already exists"):
        await projects.create("p")
    with pytest.raises(NotFound):
        await projects.by_name("q")


async def test_agent_keys_are_stored_as_hashes_and_rotate(db: Database) -> None:
    project = await ProjectStore(db).create("p")
    agents = AgentStore(db)
    agent, issued = await agents.create("a", project.id, "")
    stored = await agents.key_by_hash(issued.key.key_hash)
    assert stored is not None and stored.agent_id == agent.id
    assert issued.secret not in repr(stored)

    new, old_keys_end = await agents.rotate_key(agent.id, grace_ms=60_000)
    keys = await agents.keys(agent.id)
    assert {k.id for k in keys} == {issued.key.id, new.key.id}
    old = next(k for k in keys if k.id == issued.key.id)
    assert old.expires_at == old_keys_end
    assert len(await agents.live_keys(agent.id)) == 2

    await agents.rotate_key(agent.id, grace_ms=0)
    assert len(await agents.live_keys(agent.id)) == 1


async def test_key_use_moves_last_used_forward_never_back(db: Database) -> None:
    project = await ProjectStore(db).create("p")
    agents = AgentStore(db)
    agent, first = await agents.create("a", project.id, "")
    second, _ends = await agents.rotate_key(agent.id, grace_ms=60_000)

    await agents.record_key_use({first.key.id: 2_000, second.key.id: 1_000})
    await agents.record_key_use({first.key.id: 1_500})  # a replica's older flush
    await agents.record_key_use({})

    used = {k.id: k.last_used_at for k in await agents.keys(agent.id)}
    assert used == {first.key.id: 2_000, second.key.id: 1_000}


async def test_events_written_before_the_chain_existed_are_chained_on_upgrade(
    empty_database_url: str,
) -> None:
    from alembic import command
    from sqlalchemy import text as sql

    from tether.store.migrate import alembic_config

    database = Database(empty_database_url)
    try:
        async with database.write() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0007"))
            for n in range(5):
                await conn.execute(
                    sql(
                        "INSERT INTO audit_events (id, ts, actor, source, action, resource, "
                        "result, reason, attributes) VALUES (:id, :ts, 'admin:x', 'admin', "
                        "'admin:projects.create', 'POST /projects', 'allow', '', '{}')"
                    ),
                    {"id": f"old{n}", "ts": 1_700_000_000_000 + n},
                )
        await upgrade(database)
        store = AuditStore(database)
        report = await store.verify()
        assert report.intact and report.checked == 5 and report.head.seq == 5
        rows = await store.query(limit=10)
        assert [r["id"] for r in rows] == [f"old{n}" for n in range(5)]
        appender = appender_for(empty_database_url)
        log = AuditLog(appender)
        log.start()
        await log.record(AuditEvent("t", "test", "x:y", "r", "allow"))
        await log.stop()
        after = await store.verify()
        assert after.intact and after.checked == 6
    finally:
        await database.dispose()


async def test_project_guard_settings_round_trip(db: Database) -> None:
    projects = ProjectStore(db)
    project = await projects.create("p")
    assert load_guard_settings(project.guards) == GuardSettings()
    changed = GuardSettings().updated({"repeat_limit": None, "on_trip": "terminate"})
    await projects.update(project.id, {"guards": changed.to_json()})
    stored = load_guard_settings((await projects.by_name("p")).guards)
    assert stored.repeat_limit is None and stored.on_trip is OnTrip.TERMINATE
    assert stored.max_retries == GuardSettings().max_retries


async def test_revoking_an_agent_revokes_its_keys(db: Database) -> None:
    project = await ProjectStore(db).create("p")
    agents = AgentStore(db)
    agent, _ = await agents.create("a", project.id, "")
    await agents.set_state(agent.id, AgentState.REVOKED, "admin:test", "compromised")
    assert await agents.live_keys(agent.id) == []
    refreshed = await agents.get(agent.id)
    assert refreshed is not None and refreshed.state is AgentState.REVOKED


async def test_a_session_state_change_returns_the_changed_session_and_is_fed(
    db: Database, database_url: str
) -> None:
    """Through the SQLite writer thread (as tether runs) and through the engine alike."""
    from sqlalchemy.engine import make_url

    from tether.records.fleet import SessionState
    from tether.store.changes import read_changes
    from tether.store.sqlite_writer import SqliteWriter

    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    writer = None if db.is_postgres else SqliteWriter(make_url(database_url).database or "")
    try:
        for store in {SessionStore(db), SessionStore(db, writer)}:
            session_id = f"s-{id(store)}"
            await store.get_or_create(session_id, agent.id, project.id)
            changed = await store.set_state(
                session_id, SessionState.TERMINATED, "admin:test", "stop"
            )
            assert changed is not None and changed.state is SessionState.TERMINATED
            assert (changed.state_by, changed.state_reason) == ("admin:test", "stop")
            assert changed == await store.get(session_id)
            assert await store.set_state("none", SessionState.PAUSED, "admin:test", "") is None
            async with db.read() as conn:
                fed = await read_changes(conn, 0)
            assert ("session", session_id) in {(c.kind, c.ref) for c in fed}
    finally:
        if writer is not None:
            await writer.close()


async def test_a_session_transition_changes_only_from_the_allowed_states_and_is_fed(
    db: Database, database_url: str
) -> None:
    """Kill and resume: a session in ``state`` already, or in a state it may not leave
    for it, comes back unchanged; on SQLite's writer the caller's work (the audit log's
    appender) joins the change."""
    from sqlalchemy.engine import make_url

    from tether.audit.appender import append_linked
    from tether.audit.event import AuditEvent
    from tether.audit.normalise import normalised_row
    from tether.audit.table import AuditStore
    from tether.records.fleet import SessionState
    from tether.store.changes import read_changes
    from tether.store.sqlite_writer import SqliteWriter

    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    writer = None if db.is_postgres else SqliteWriter(make_url(database_url).database or "")
    event = AuditEvent("admin:t", "admin", "admin:sessions.kill", "POST /x", "ok")
    try:
        store = SessionStore(db, writer)
        await store.get_or_create("s", agent.id, project.id)
        rows = [normalised_row(event)]

        def audit(conn: sqlite3.Connection) -> None:
            append_linked(conn, rows)

        joined = audit if writer is not None else None
        killed = await store.transition(
            "s", SessionState.TERMINATED, set(SessionState), "admin:t", "stop", joined
        )
        assert killed is not None and killed.changed and killed.audited is (writer is not None)
        assert killed.before.state is SessionState.ACTIVE
        assert killed.after == await store.get("s")
        assert killed.after.state is SessionState.TERMINATED
        again = await store.transition(
            "s", SessionState.TERMINATED, set(SessionState), "admin:t", "", joined
        )
        assert again is not None and not again.changed and not again.audited
        refused = await store.transition(
            "s", SessionState.ACTIVE, {SessionState.PAUSED}, "admin:t", "", joined
        )
        assert refused is not None and not refused.changed
        assert refused.after.state is SessionState.TERMINATED
        assert await store.transition("none", SessionState.ACTIVE, set(), "a", "") is None
        async with db.read() as conn:
            fed = [(c.kind, c.ref) for c in await read_changes(conn, 0)]
        assert fed.count(("session", "s")) == 1
        if writer is not None:
            recorded = await AuditStore(db).query(action_prefix="admin:sessions.kill")
            assert [e["id"] for e in recorded] == [event.id]
            assert (await AuditStore(db).verify()).intact
    finally:
        if writer is not None:
            await writer.close()


async def test_concurrent_get_or_create_of_one_session_yields_one_row(db: Database) -> None:
    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    sessions = SessionStore(db)
    results = await asyncio.gather(
        *[sessions.get_or_create("same", agent.id, project.id) for _ in range(10)]
    )
    assert {r.id for r in results} == {"same"}
    assert len(await sessions.find()) == 1
    delta = ActivityDelta(last_activity_at=results[0].created_at + 5, requests=3, cost_micros=42)
    await sessions.record_activity({"same": delta})
    updated = await sessions.get("same")
    assert updated is not None and updated.request_count == 3 and updated.cost_micros == 42
    assert updated.last_activity_at == results[0].created_at + 5


async def test_replicas_flushing_the_same_sessions_in_opposite_orders_do_not_deadlock(
    db: Database,
) -> None:
    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    sessions = SessionStore(db)
    ids = [f"s{i}" for i in range(12)]
    for session_id in ids:
        await sessions.get_or_create(session_id, agent.id, project.id)
    forward = {i: ActivityDelta(requests=1) for i in ids}
    backward = {i: ActivityDelta(requests=1) for i in reversed(ids)}
    rounds = 15
    for _ in range(rounds):
        await asyncio.gather(sessions.record_activity(forward), sessions.record_activity(backward))
    counts = {s.id: s.request_count for s in await sessions.find()}
    assert counts == {i: 2 * rounds for i in ids}


async def test_a_deadlock_is_a_retryable_store_unavailable(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite serialises writers; it cannot deadlock")
    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    sessions = SessionStore(db)
    for session_id in ("x", "y"):
        await sessions.get_or_create(session_id, agent.id, project.id)
    both_hold_one = asyncio.Barrier(2)

    async def lock(first: str, second: str) -> None:
        statement = "UPDATE sessions SET request_count = request_count + 1 WHERE id = :id"
        async with db.write() as conn:
            await conn.execute(text(statement), {"id": first})
            await both_hold_one.wait()
            await conn.execute(text(statement), {"id": second})

    results = await asyncio.gather(lock("x", "y"), lock("y", "x"), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], StoreUnavailable)
    assert "deadlock" in failures[0].message


async def test_audit_log_group_commits_concurrent_events(db: Database, database_url: str) -> None:
    store = AuditStore(db)
    log = AuditLog(appender_for(database_url))
    log.start()
    events = [
        AuditEvent(
            actor="agent:a",
            source="test",
            action="x:Y",
            resource=f"r{i}",
            result="allow",
            session_id="s",
        )
        for i in range(200)
    ]
    await asyncio.gather(*[log.record(e) for e in events])
    await log.stop()
    rows = await store.query(session_id="s", limit=1000)
    assert sorted(r["resource"] for r in rows) == sorted(f"r{i}" for i in range(200))
    first = next(r for r in rows if r["id"] == events[0].id)
    assert (first["actor"], first["source"], first["action"], first["result"]) == (
        "agent:a",
        "test",
        "x:Y",
        "allow",
    )
    assert first["ts"] == events[0].ts


async def test_audit_query_filters_by_time_window(db: Database, database_url: str) -> None:
    store = AuditStore(db)
    appender = appender_for(database_url)
    base = 1_800_000_000_000
    await appender.append(
        [
            normalised_row(
                AuditEvent(
                    actor="a",
                    source="t",
                    action="x",
                    resource=str(i),
                    result="allow",
                    ts=base + i * 1000,
                )
            )
            for i in range(10)
        ]
    )
    await appender.close()
    rows = await store.query(since_ms=base + 3000, until_ms=base + 6000)
    assert [r["resource"] for r in rows] == ["3", "4", "5"]


async def test_change_feed_delivers_changes_made_by_another_connection(
    db: Database, database_url: str
) -> None:
    seen: list[Change] = []

    async def collect(change: Change) -> None:
        seen.append(change)

    feed = ChangeFeed(db, poll_seconds=0.1)
    feed.subscribe(collect)
    await feed.start()
    other = Database(database_url)
    try:
        project = await ProjectStore(other).create("p")
        for _ in range(50):
            if any(c.kind == "project" and c.ref == project.id for c in seen):
                break
            await asyncio.sleep(0.05)
        assert [c.ref for c in seen if c.kind == "project"] == [project.id]
        await feed.catch_up()
        assert len([c for c in seen if c.kind == "project"]) == 1, "changes are applied once"
    finally:
        await feed.stop()
        await other.dispose()


async def test_webhook_urls_stored_in_clear_are_sealed_on_upgrade(
    empty_database_url: str,
) -> None:
    """Rows written before 0009 keep working: their URL is sealed under the master key
    and only the masked form stays readable; the dispatcher still gets the real URL."""
    import os

    from alembic import command
    from sqlalchemy import text as sql

    from tether.store.migrate import alembic_config
    from tether.store.webhooks import WebhookStore
    from tether.vault.sealed_box import SealedBox

    url = "https://hooks.slack.com/services/T1/B2/notforeyes"
    box = SealedBox(os.urandom(32))
    database = Database(empty_database_url)
    try:
        async with database.write() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0008"))
        project = await ProjectStore(database).create("p")
        async with database.write() as conn:
            await conn.execute(
                sql(
                    "INSERT INTO webhooks (id, project_id, kind, url, created_at, created_by) "
                    "VALUES ('w1', :project, 'slack', :url, 1, 'admin:x')"
                ),
                {"project": project.id, "url": url},
            )
        with pytest.raises(Exception, match="master key"):
            await upgrade(database)
        await upgrade(database, box)
        async with database.read() as conn:
            stored = (await conn.execute(sql("SELECT url, url_sealed FROM webhooks"))).one()
        assert stored.url == "https://hooks.slack.com/…"
        assert b"notforeyes" not in bytes(stored.url_sealed)
        store = WebhookStore(database, box)
        assert [w.url for w in await store.of_project(project.id)] == ["https://hooks.slack.com/…"]
        found = await store.get("w1")
        assert found is not None and found[0].url == url
    finally:
        await database.dispose()


async def test_driver_and_pool_errors_mean_the_store_is_unavailable(db: Database) -> None:
    """What the PostgreSQL driver raises on a broken connection (seen during an outage:
    ``InternalClientError``) and an exhausted pool fail closed as 503s, not 500s."""
    import asyncpg
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    for failure in (
        asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    ):
        with pytest.raises(StoreUnavailable):
            async with db.read():
                raise failure


async def test_an_approval_is_told_as_decided_even_when_a_waiting_agent_spends_it_at_once(
    db: Database,
) -> None:
    """The decider is answered with the decision it made, not the state a waiting agent
    moved the approval to the moment the decision committed."""
    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    await SessionStore(db).get_or_create("s", agent.id, project.id)
    store = ApprovalStore(db)
    ask = ApprovalRequest(project.id, agent.id, "s", "s3:DeleteBucket", "b", "deletion", {})

    async def spend_as_soon_as_approved(pending: ApprovalRecord, spent: asyncio.Event) -> None:
        while not spent.is_set():
            if await store.use(pending) is not None:
                spent.set()
            await asyncio.sleep(0.0002)

    for _ in range(60):
        pending, spent = await store.request(ask, 60_000, {}), asyncio.Event()
        spenders = [spend_as_soon_as_approved(pending, spent) for _ in range(4)]
        spending = asyncio.gather(*spenders)
        await asyncio.sleep(0.005)
        decided = await store.decide(pending.id, True, "admin:test", "ok", 60_000)
        await asyncio.wait_for(spending, 10)
        assert decided.state == APPROVED and decided.decided_by == "admin:test"
        assert (await store.get(pending.id)).state == USED


async def test_a_new_session_whose_id_is_taken_is_refused_and_the_first_row_stands(
    db: Database, database_url: str
) -> None:
    """A session row written as new while its call goes on (SQLite: in the writer's next
    transaction; PostgreSQL: on a connection of its own): its id already held by another
    agent refuses the call that assumed it new, and changes nothing of the row that holds
    it; held by the same agent (another worker joined the conversation first), it is the
    session."""
    from sqlalchemy.engine import make_url

    from tether.errors import TetherError
    from tether.store.sqlite_writer import SqliteWriter

    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    other, _ = await AgentStore(db).create("b", project.id, "")
    writer = None if db.is_postgres else SqliteWriter(make_url(database_url).database or "")
    try:
        store = SessionStore(db, writer)
        made = store.create_queued("s-new", agent.id, project.id)
        assert made is not None
        await made[1].result()
        again = store.create_queued("s-new", other.id, project.id)
        assert again is not None
        with pytest.raises(TetherError) as refused:
            await again[1].result()
        assert refused.value.code == "session_not_owned"
        kept = await store.get("s-new")
        assert kept is not None and kept.agent_id == agent.id

        # Another worker joined the agent's conversation and made its row first.
        joined = await store.get_or_create("s-joined", agent.id, project.id)
        late = store.create_queued("s-joined", agent.id, project.id)
        assert late is not None
        await late[1].result()
        assert (await store.get("s-joined")) == joined
    finally:
        if writer is not None:
            await writer.close()


async def test_a_snapshot_of_many_resources_answers_as_each_resources_own_reads(
    db: Database,
) -> None:
    """What a call of many deletions looks ahead with (``ApprovalStore.snapshot``): for
    every resource, across more resources than one statement asks for, the newest exact
    approval and the covering group that ``latest`` and ``group_for`` find one by one
    (a live grant before a newer pending group; nothing for a resource no one asked for)."""
    from tether.store.approvals import SNAPSHOT_CHUNK

    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    await SessionStore(db).get_or_create("s", agent.id, project.id)
    store = ApprovalStore(db)

    def ask(resource: str) -> ApprovalRequest:
        return ApprovalRequest(project.id, agent.id, "s", "s3:DeleteObject", resource, "x", {})

    old = await store.request(ask("arn:aws:s3:::b/one"), 60_000, {})
    await store.decide(old.id, False, "admin:test", "no", 60_000)
    newer = await store.request(ask("arn:aws:s3:::b/one"), 60_000, {})
    granted = await store.request(ask("arn:aws:s3:::b/logs/0"), 60_000, {}, "arn:aws:s3:::b/logs/")
    await store.decide(granted.id, True, "admin:test", "ok", 60_000, 5, "arn:aws:s3:::b/logs/")
    await store.request(ask("arn:aws:s3:::b/logs/9"), 60_000, {}, "arn:aws:s3:::b/logs/")
    await store.request(ask("arn:aws:s3:::b/tmp/0"), 60_000, {}, "arn:aws:s3:::b/tmp/")
    other = ApprovalRequest(
        project.id, agent.id, "s", "s3:DeleteBucket", "arn:aws:s3:::b/two", "x", {}
    )
    await store.request(other, 60_000, {})

    beyond = f"arn:aws:s3:::b/logs/{SNAPSHOT_CHUNK + 10}"
    late = await store.request(ask(beyond), 60_000, {})

    resources = [f"arn:aws:s3:::b/logs/{n}" for n in range(SNAPSHOT_CHUNK + 20)]
    resources += ["arn:aws:s3:::b/one", "arn:aws:s3:::b/two", "arn:aws:s3:::b/tmp/7"]
    snapshot = await store.snapshot("s", "s3:DeleteObject", resources)
    for resource in resources:
        assert snapshot.latest(resource) == await store.latest("s", "s3:DeleteObject", resource)
        assert snapshot.group_for(resource) == await store.group_for(
            "s", "s3:DeleteObject", resource
        )
    one = snapshot.latest("arn:aws:s3:::b/one")
    assert one is not None and one.id == newer.id, "the newest of a resource's approvals"
    live = snapshot.group_for("arn:aws:s3:::b/logs/700")
    assert live is not None and live.id == granted.id, "the live grant, not the newer group"
    assert snapshot.latest("arn:aws:s3:::b/two") is None, "another action's approval"
    found = snapshot.latest(beyond)
    assert found is not None and found.id == late.id, "read in the second statement"
    assert snapshot.latest("arn:aws:s3:::b/logs/9") is not None


async def test_a_group_decided_as_one_action_after_it_grew_is_refused_not_granted_whole(
    db: Database,
) -> None:
    """An approver looked at a group of one deletion and approved it as that one action; a
    second deletion joined before the decision landed. Granted anyway, the grant kept the
    group's prefix: one use of anything under it, not the deletion the approver saw."""
    project = await ProjectStore(db).create("p")
    agent, _ = await AgentStore(db).create("a", project.id, "")
    await SessionStore(db).get_or_create("s", agent.id, project.id)
    store = ApprovalStore(db)
    build = "arn:aws:s3:::b/data/build"
    ask = ApprovalRequest(project.id, agent.id, "s", "s3:DeleteObject", build, "deletion", {})
    group = await store.request(ask, 60_000, {}, scope_prefix="arn:aws:s3:::b/data/")
    assert await store.join(group, "arn:aws:s3:::b/data/models")

    with pytest.raises(Conflict) as refused:
        await store.decide(group.id, True, "admin:test", "ok", 60_000)
    assert "now covers 2 actions" in refused.value.message
    assert (await store.get(group.id)).state == PENDING
    denied = await store.decide(group.id, False, "admin:test", "keep them", 0)
    assert denied.state == DENIED, "a denial is of the whole group, however it grew"

    alone = await store.request(
        ApprovalRequest(project.id, agent.id, "s", "s3:DeleteBucket", "b", "deletion", {}),
        60_000,
        {},
    )
    decided = await store.decide(alone.id, True, "admin:test", "ok", 60_000)
    assert decided.state == APPROVED and decided.scope_prefix is None
