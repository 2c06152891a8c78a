"""The audit table, read side: time-ordered queries (writes go through ``audit_appender``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tether.store.database import Database
from tether.store.schema import audit_events

__all__ = ["AuditStore"]


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def query(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        project_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        action_prefix: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        query = select(audit_events).order_by(audit_events.c.ts, audit_events.c.id).limit(limit)
        if agent_id:
            query = query.where(audit_events.c.agent_id == agent_id)
        if session_id:
            query = query.where(audit_events.c.session_id == session_id)
        if project_id:
            query = query.where(audit_events.c.project_id == project_id)
        if since_ms is not None:
            query = query.where(audit_events.c.ts >= since_ms)
        if until_ms is not None:
            query = query.where(audit_events.c.ts < until_ms)
        if action_prefix:
            query = query.where(audit_events.c.action.startswith(action_prefix, autoescape=True))
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]
