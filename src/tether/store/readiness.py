"""The indexed questions readiness checks ask of the store.

Each is one query answered from an index (``ix_audit_events_project_action_ts``,
``ix_sessions_project_state``), so a project with millions of events is checked in
milliseconds: counts by exact action or action range, never ``LIKE`` over the trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, or_, select, text

from tether.records.fleet import PROBE_SESSION_PREFIX
from tether.store.database import Database
from tether.store.schema import HOOK_CLOUD, audit_events, outbox, sessions, tasks, webhooks

__all__ = ["DRILL_CAUSED", "HOOK_SOURCE", "ReadinessQueries"]

HOOK_SOURCE = "claude_code_hook"
"""The source of events Claude Code's hooks reported (``gateway/claude_code/hooks.py``)."""

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


def _not_probe() -> Any:
    """Not ``tether policy probe``'s own session: its calls are tests, refused on purpose."""
    return or_(
        audit_events.c.session_id.is_(None),
        ~audit_events.c.session_id.startswith(PROBE_SESSION_PREFIX, autoescape=True),
    )


class ReadinessQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def last_event(
        self, project_id: str | None, action: str, result: str
    ) -> dict[str, Any] | None:
        """The newest event of exactly ``action`` with ``result`` in the project (None:
        of the deployment, such as the trail's own verification and export)."""
        in_project = (
            audit_events.c.project_id.is_(None)
            if project_id is None
            else audit_events.c.project_id == project_id
        )
        query = (
            select(audit_events)
            .where(
                in_project,
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

    async def hook_cloud_calls(self, project_id: str, since_ms: int) -> dict[str, int]:
        """Per agent, the cloud commands (``aws …`` on an ARN) its hooks reported since
        ``since_ms``: from the partial index ``ix_audit_events_hook_cloud``."""
        query = (
            select(audit_events.c.agent_id, func.count().label("calls"))
            .where(
                audit_events.c.project_id == project_id,
                audit_events.c.ts >= since_ms,
                text(HOOK_CLOUD),
                ~audit_events.c.action.startswith("tool_result:", autoescape=True),
                audit_events.c.result != "deny",
                _not_probe(),
            )
            .group_by(audit_events.c.agent_id)
        )
        async with self._db.read() as conn:
            return {r.agent_id: int(r.calls) for r in await conn.execute(query) if r.agent_id}

    async def hook_mcp_calls(self, project_id: str, since_ms: int) -> dict[str, int]:
        """Per ``mcp://SERVER/TOOL`` resource, the MCP tool calls hooks reported since
        ``since_ms`` (actions ``mcp:…``: a range of the project/action index)."""
        query = (
            select(audit_events.c.resource, func.count().label("calls"))
            .where(
                audit_events.c.project_id == project_id,
                _prefix("mcp:"),
                audit_events.c.ts >= since_ms,
                audit_events.c.source == HOOK_SOURCE,
                audit_events.c.result != "deny",
                _not_probe(),
            )
            .group_by(audit_events.c.resource)
        )
        async with self._db.read() as conn:
            return {r.resource: int(r.calls) for r in await conn.execute(query)}
