"""Agent sessions: created on first sight, owned by one agent for life."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import bindparam, case, select, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import now_ms
from tether.errors import Conflict, StoreUnavailable, TetherError
from tether.records.fleet import ActivityDelta, SessionRecord, SessionState
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.driver_errors import CONNECTION_ERRORS
from tether.store.pending import PendingStatement, PendingWrite
from tether.store.plain_sql import PlainStatement
from tether.store.schema import sessions
from tether.store.sqlite_writer import SqliteWriter

__all__ = ["SessionStore", "Transition"]

_COLUMNS = [column.name for column in sessions.columns]
_CREATE_NEW = (
    "INSERT INTO sessions (id, agent_id, project_id, state, created_at, last_activity_at, "
    "request_count) VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (id) DO NOTHING"
)
"""A new session's row, nothing read back (``rowcount`` says whether it went in): SQLite's
``RETURNING`` collects its rows in a table of its own, which costs more than the insert
itself (``bench/sqlite_returning_bench.py``)."""
_CREATE = f"{_CREATE_NEW} RETURNING {', '.join(_COLUMNS)}"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE id = ?"
_AGENT_OF = "SELECT agent_id FROM sessions WHERE id = ?"
_SET_STATE = (
    "UPDATE sessions SET state = ?, state_by = ?, state_reason = ?, state_at = ? WHERE id = ?"
)
_RECORD_CHANGE = "INSERT INTO change_log (kind, ref, created_at) VALUES ('session', ?, ?)"


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change asked of a session: as it was, as it is now, and whether the
    caller's audit rows were committed with the change (SQLite's writer only)."""

    before: SessionRecord
    after: SessionRecord
    audited: bool = False

    @property
    def changed(self) -> bool:
        return self.before.state is not self.after.state


def _session(row: Mapping[Any, Any]) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        agent_id=row["agent_id"],
        project_id=row["project_id"],
        state=SessionState(row["state"]),
        created_at=row["created_at"],
        last_activity_at=row["last_activity_at"],
        request_count=row["request_count"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_creation_tokens=row["cache_creation_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cost_micros=row["cost_micros"],
        state_by=row["state_by"],
        state_reason=row["state_reason"],
        state_at=row["state_at"],
    )


async def _select(conn: AsyncConnection, session_id: str) -> SessionRecord | None:
    row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
    return _session(row._mapping) if row else None


def _create_sqlite(conn: sqlite3.Connection, values: tuple[Any, ...]) -> SessionRecord:
    """One statement for a new session; an existing one is read."""
    row = conn.execute(_CREATE, values).fetchone()
    if row is None:
        row = conn.execute(_SELECT, (values[0],)).fetchone()
    return _session(dict(zip(_COLUMNS, row, strict=True)))


def _new_record(values: tuple[Any, ...]) -> SessionRecord:
    """The row ``_CREATE`` writes for ``values``, as it reads back."""
    session_id, agent_id, project_id, state, created_at, last_activity_at = values
    return SessionRecord(
        session_id, agent_id, project_id, SessionState(state), created_at, last_activity_at, 0
    )


class SessionIdTaken(TetherError):
    code = "session_not_owned"


def _create_new_sqlite(conn: sqlite3.Connection, values: tuple[Any, ...]) -> None:
    """A session made here; as ``get_or_create``, a row another worker made first for the
    same agent (it joined the conversation before this row landed) is the session. Raises
    (undoing nothing else in the batch) if another agent's row holds the id, so the call
    that assumed it new is refused."""
    if conn.execute(_CREATE_NEW, values).rowcount == 1:
        return
    row = conn.execute(_AGENT_OF, (values[0],)).fetchone()
    if row is None or row[0] != values[1]:
        raise SessionIdTaken(f"session {values[0]} already exists")


def _creating(dialect: Any) -> Any:
    """Get-or-create in one statement, built once (its compiled form is then cached)."""
    return (
        dialect.insert(sessions)
        .values({**{name: bindparam(name) for name in _COLUMNS[:6]}, "request_count": 0})
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(*sessions.columns)
    )


_CREATE_SQLITE = _creating(sqlite)
_CREATE_PG = _CREATE.replace("?", "{}").format(*(f"${n}" for n in range(1, 7)))
_SELECT_PG = _SELECT.replace("?", "$1")


_ADD_ACTIVITY = (
    update(sessions)
    .where(sessions.c.id == bindparam("sid"))
    .values(
        request_count=sessions.c.request_count + bindparam("requests"),
        input_tokens=sessions.c.input_tokens + bindparam("input"),
        output_tokens=sessions.c.output_tokens + bindparam("output"),
        cache_creation_tokens=sessions.c.cache_creation_tokens + bindparam("cache_creation"),
        cache_read_tokens=sessions.c.cache_read_tokens + bindparam("cache_read"),
        cost_micros=sessions.c.cost_micros + bindparam("cost"),
        last_activity_at=case(
            (sessions.c.last_activity_at < bindparam("at"), bindparam("at")),
            else_=sessions.c.last_activity_at,
        ),
    )
)

_ADD_ACTIVITY_PLAIN = PlainStatement.of(_ADD_ACTIVITY)
"""``_ADD_ACTIVITY`` for the SQLite writer thread."""


class SessionStore:
    """The hot path's get-or-create is one statement: on SQLite through the writer thread
    (one hand-off, committed with its neighbours), on PostgreSQL on the driver (one round
    trip, committed on its own); through the async ORM it was a transaction of three
    round trips and about 0.3 ms of CPU on every new session."""

    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._db.read() as conn:
            return await _select(conn, session_id)

    async def get_or_create(self, session_id: str, agent_id: str, project_id: str) -> SessionRecord:
        """The session with this id, created for this agent if new (safe under races)."""
        ts = now_ms()
        values = (session_id, agent_id, project_id, SessionState.ACTIVE.value, ts, ts)
        if self._writer is not None:
            return await self._writer.transaction(
                lambda conn: _create_sqlite(conn, values), brief=True
            )
        if self._db.is_postgres:
            return await self._get_or_create_postgres(values)
        params = dict(zip(_COLUMNS[:6], values, strict=True))
        async with self._db.write() as conn:
            row = (await conn.execute(_CREATE_SQLITE, params)).first()
            created = _session(row._mapping) if row else await _select(conn, session_id)
        assert created is not None
        return created

    async def _get_or_create_postgres(self, values: tuple[Any, ...]) -> SessionRecord:
        try:
            pool = await self._db.driver_pool()
            async with pool.acquire() as conn:
                row = await conn.fetchrow(_CREATE_PG, *values)
                if row is None:
                    row = await conn.fetchrow(_SELECT_PG, values[0])
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict(f"the session cannot be created: {exc}") from exc
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"the database cannot be written: {exc}") from exc
        if row is None:
            raise StoreUnavailable(f"session {values[0]} vanished as it was created")
        return _session(row)

    def create_queued(
        self, session_id: str, agent_id: str, project_id: str
    ) -> tuple[SessionRecord, PendingWrite[None]] | None:
        """A session whose id was just made here, so nobody else can hold it: its row is
        written while the request goes on (on SQLite in the writer's next transaction, the
        request's next write; on PostgreSQL on a connection of its own, beside the budget
        hold), and the caller awaits the returned write before acting on it
        (``SessionIdTaken`` if the id was somehow in use). None where neither applies: the
        caller uses ``get_or_create``."""
        ts = now_ms()
        values = (session_id, agent_id, project_id, SessionState.ACTIVE.value, ts, ts)
        if self._writer is not None:
            queued = self._writer.queue(lambda c: _create_new_sqlite(c, values), brief=True)
            return _new_record(values), queued
        if self._db.is_postgres:
            return _new_record(values), PendingStatement(self._create_new_postgres(values))
        return None

    async def _create_new_postgres(self, values: tuple[Any, ...]) -> None:
        """``get_or_create``: a row another replica made first for the same agent (it
        joined the conversation through the shared map before this row landed) is the
        session; only another agent's is refused."""
        if (await self._get_or_create_postgres(values)).agent_id != values[1]:
            raise SessionIdTaken(f"session {values[0]} already exists")

    async def find(
        self,
        project_id: str | None = None,
        agent_id: str | None = None,
        state: SessionState | None = None,
        limit: int = 200,
        before: tuple[int, str] | None = None,
    ) -> list[SessionRecord]:
        """Newest activity first; ``before`` (last activity, id) resumes after a page."""
        query = (
            select(sessions)
            .order_by(sessions.c.last_activity_at.desc(), sessions.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(
                tuple_(sessions.c.last_activity_at, sessions.c.id) < tuple_(*before)
            )
        if project_id:
            query = query.where(sessions.c.project_id == project_id)
        if agent_id:
            query = query.where(sessions.c.agent_id == agent_id)
        if state:
            query = query.where(sessions.c.state == state.value)
        async with self._db.read() as conn:
            return [_session(r._mapping) for r in await conn.execute(query)]

    async def set_state(
        self, session_id: str, state: SessionState, by: str, reason: str
    ) -> SessionRecord | None:
        """The session as changed (None if there is none), read in the same transaction.
        On SQLite through the writer thread: a second writer connection would wait for the
        hot path's commits in SQLite's busy handler, which sleeps up to 100 ms a try (a
        kill under load took 0.4 s)."""
        ts = now_ms()
        if self._writer is not None:

            def write(conn: sqlite3.Connection) -> SessionRecord | None:
                conn.execute(_SET_STATE, (state.value, by, reason, ts, session_id))
                conn.execute(_RECORD_CHANGE, (session_id, ts))
                row = conn.execute(_SELECT, (session_id,)).fetchone()
                return _session(dict(zip(_COLUMNS, row, strict=True))) if row else None

            return await self._writer.transaction(write)
        async with self._db.write() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(state=state.value, state_by=by, state_reason=reason, state_at=ts)
            )
            await record_change(conn, "session", session_id)
            return await _select(conn, session_id)

    async def transition(
        self,
        session_id: str,
        state: SessionState,
        allowed_from: set[SessionState],
        by: str,
        reason: str,
        in_same_transaction: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Transition | None:
        """Move the session to ``state`` if it is in one of ``allowed_from`` (None if there
        is no session). On SQLite one writer transaction reads it, changes it, records the
        change and runs ``in_same_transaction`` (the audit log appends its event there): one
        hand-off instead of a read, a write and an audit batch, each waiting its turn on a
        busy loop."""
        if self._writer is None:
            before = await self.get(session_id)
            if before is None or before.state is state or before.state not in allowed_from:
                return None if before is None else Transition(before, before)
            after = await self.set_state(session_id, state, by, reason)
            return None if after is None else Transition(before, after)
        ts = now_ms()

        def write(conn: sqlite3.Connection) -> Transition | None:
            row = conn.execute(_SELECT, (session_id,)).fetchone()
            if row is None:
                return None
            before = _session(dict(zip(_COLUMNS, row, strict=True)))
            if before.state is state or before.state not in allowed_from:
                return Transition(before, before)
            conn.execute(_SET_STATE, (state.value, by, reason, ts, session_id))
            conn.execute(_RECORD_CHANGE, (session_id, ts))
            if in_same_transaction is not None:
                in_same_transaction(conn)
            row = conn.execute(_SELECT, (session_id,)).fetchone()
            after = _session(dict(zip(_COLUMNS, row, strict=True)))
            return Transition(before, after, audited=in_same_transaction is not None)

        return await self._writer.transaction(write)

    async def record_activity(self, activity: dict[str, ActivityDelta]) -> None:
        """Apply batched counters in one transaction and one statement, in session-id
        order so that two replicas flushing the same sessions cannot deadlock. On SQLite
        through the writer thread in plain SQL: a client that names no session brings a
        new row to every flush, and the ORM's per-row parameter handling (on the event
        loop) and a second writer connection cost more than the update itself."""
        if not activity:
            return
        rows = [
            {
                "sid": session_id,
                "requests": delta.requests,
                "input": delta.input_tokens,
                "output": delta.output_tokens,
                "cache_creation": delta.cache_creation_tokens,
                "cache_read": delta.cache_read_tokens,
                "cost": delta.cost_micros,
                "at": delta.last_activity_at,
            }
            for session_id, delta in sorted(activity.items(), key=lambda item: item[0])
        ]
        if self._writer is not None:
            values = _ADD_ACTIVITY_PLAIN.rows(rows)
            await self._writer.transaction(lambda c: c.executemany(_ADD_ACTIVITY_PLAIN.sql, values))
            return
        async with self._db.write() as conn:
            await conn.execute(_ADD_ACTIVITY, rows)
