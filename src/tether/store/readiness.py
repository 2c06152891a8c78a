"""The indexed questions readiness checks ask of the store.

Each is one query answered from an index (``ix_audit_events_project_action_ts``,
``ix_sessions_project_state``), so a project with millions of events is checked in
milliseconds: counts by exact action or action range, never ``LIKE`` over the trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, select

from tether.store.database import Database
from tether.store.schema import audit_events, outbox, sessions, tasks, webhooks

__all__ = ["DRILL_CAUSED", "ReadinessQueries"]

DRILL_CAUSED = (
    "session_terminated",
    "session_paused",
    "agent_stopped",
    "agent_revoked",
    "project_paused",
    "fleet_paused",
    "invalid_key",
    "revoked_key",
)


def _prefix(action: str) -> Any:
    """``action`` starts with ``prefix``, as a range an index can serve."""
    return and_(audit_events.c.action >= action, audit_events.c.action < action + "\uffff")


class ReadinessQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def last_event(self, project_id: str, action: str, result: str) -> dict[str, Any] | None:
        """The newest event of exactly ``action`` with ``result`` in the project."""
        query = (
            select(audit_events)
            .where(
                audit_events.c.project_id == project_id,
                audit_events.c.action == action,
                audit_events.c.result == result,
            )
            .order_by(audit_events.c.ts.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return dict(row._mapping) if row else None

    async def count_actions(
        self, project_id: str, action: str, since_ms: int, *, prefix: bool = False
    ) -> int:
        """Events of ``action`` (or of actions starting with it) since ``since_ms``."""
        matches = _prefix(action) if prefix else audit_events.c.action == action
        query = select(func.count()).where(
            audit_events.c.project_id == project_id, matches, audit_events.c.ts >= since_ms
        )
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def last_delivery(self, project_id: str) -> int | None:
        """When a webhook of the project last delivered an alert."""
        query = (
            select(func.max(outbox.c.delivered_at))
            .select_from(outbox.join(webhooks, outbox.c.webhook_id == webhooks.c.id))
            .where(webhooks.c.project_id == project_id)
        )
        async with self._db.read() as conn:
            value = (await conn.execute(query)).scalar_one()
        return int(value) if value is not None else None

    async def long_sessions_without_task(
        self, project_id: str, started_before_ms: int, limit: int = 20
    ) -> list[str]:
        """Active sessions older than the mark with no task attached."""
        query = (
            select(sessions.c.id)
            .where(
                sessions.c.project_id == project_id,
                sessions.c.state == "active",
                sessions.c.created_at < started_before_ms,
                ~exists().where(tasks.c.session_id == sessions.c.id),
            )
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [r.id for r in await conn.execute(query)]

    async def refusals_except(self, project_id: str, agent_id: str, since_ms: int) -> int:
        """Refusals of the project's other agents since ``since_ms`` of the kind a drill
        could cause (stopped, paused, key refused): a drill must cause none."""
        query = select(func.count()).where(
            audit_events.c.project_id == project_id,
            audit_events.c.ts >= since_ms,
            audit_events.c.result == "deny",
            audit_events.c.code.in_(DRILL_CAUSED),
            audit_events.c.agent_id != agent_id,
        )
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
