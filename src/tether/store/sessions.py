"""Agent sessions: created on first sight, owned by one agent for life."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.errors import Conflict
from tether.store.changes import record_change
from tether.store.clock import now_ms
from tether.store.database import Database
from tether.store.records import ActivityDelta, SessionRecord, SessionState
from tether.store.schema import sessions

__all__ = ["SessionStore"]


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        agent_id=row.agent_id,
        project_id=row.project_id,
        state=SessionState(row.state),
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        request_count=row.request_count,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_creation_tokens=row.cache_creation_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cost_micros=row.cost_micros,
        state_by=row.state_by,
        state_reason=row.state_reason,
        state_at=row.state_at,
    )


async def _select(conn: AsyncConnection, session_id: str) -> SessionRecord | None:
    row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
    return _session(row) if row else None


class SessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._db.read() as conn:
            return await _select(conn, session_id)

    async def get_or_create(self, session_id: str, agent_id: str, project_id: str) -> SessionRecord:
        """The session with this id, created for this agent if new (safe under races)."""
        existing = await self.get(session_id)
        if existing is not None:
            return existing
        ts = now_ms()
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(sessions).values(
                        id=session_id,
                        agent_id=agent_id,
                        project_id=project_id,
                        state=SessionState.ACTIVE.value,
                        created_at=ts,
                        last_activity_at=ts,
                        request_count=0,
                    )
                )
        except Conflict:
            pass
        created = await self.get(session_id)
        assert created is not None
        return created

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
            return [_session(r) for r in await conn.execute(query)]

    async def set_state(self, session_id: str, state: SessionState, by: str, reason: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(state=state.value, state_by=by, state_reason=reason, state_at=now_ms())
            )
            await record_change(conn, "session", session_id)

    async def record_activity(self, activity: dict[str, ActivityDelta]) -> None:
        """Apply batched counters in one transaction, in session-id order so that two
        replicas flushing the same sessions cannot deadlock."""
        if not activity:
            return
        async with self._db.write() as conn:
            for session_id, delta in sorted(activity.items(), key=lambda item: item[0]):
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.id == session_id)
                    .values(
                        request_count=sessions.c.request_count + delta.requests,
                        input_tokens=sessions.c.input_tokens + delta.input_tokens,
                        output_tokens=sessions.c.output_tokens + delta.output_tokens,
                        cache_creation_tokens=sessions.c.cache_creation_tokens
                        + delta.cache_creation_tokens,
                        cache_read_tokens=sessions.c.cache_read_tokens + delta.cache_read_tokens,
                        cost_micros=sessions.c.cost_micros + delta.cost_micros,
                        last_activity_at=case(
                            (
                                sessions.c.last_activity_at < delta.last_activity_at,
                                delta.last_activity_at,
                            ),
                            else_=sessions.c.last_activity_at,
                        ),
                    )
                )
