"""Drift warnings: a session with a task that ran long, filled its context window, or went
many turns without a checkpoint. Each crossing is audited and alerted once per session,
and (``remind``) leaves a reminder to checkpoint for the next injection."""

from __future__ import annotations

import logging

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import TetherError
from tether.identity.directory import AgentIdentity
from tether.records.fleet import SessionRecord
from tether.store.alerts import AlertStore
from tether.tasks.block import reminder
from tether.tasks.marks import SessionMark
from tether.tasks.settings import DriftSettings

__all__ = ["DriftWatch", "context_window"]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 200_000
LONG_WINDOW = 1_000_000


def context_window(model: str) -> int:
    """The model's context window in tokens: 1M for the ``[1m]`` variants, else 200k."""
    return LONG_WINDOW if "1m" in model.lower() else DEFAULT_WINDOW


def crossings(
    settings: DriftSettings, session: SessionRecord, mark: SessionMark, now: int
) -> dict[str, str]:
    """Warnings this session deserves now, by kind, with what to tell the agent."""
    found: dict[str, str] = {}
    minutes = (now - session.created_at) / 60_000
    if settings.session_minutes is not None and minutes >= settings.session_minutes:
        found["session_time"] = f"this session has run {minutes:.0f} minutes"
    limit = settings.context_fill_percent
    if limit is not None and mark.fill_percent >= limit:
        found["context_fill"] = f"your context window is {mark.fill_percent:.0f}% full"
    turns = settings.turns_without_checkpoint
    if turns is not None and mark.turns >= turns:
        found["turns_without_checkpoint"] = f"{mark.turns} turns since the last checkpoint"
    return found


class DriftWatch:
    def __init__(self, audit: AuditLog, alerts: AlertStore) -> None:
        self._audit = audit
        self._alerts = alerts

    async def check(
        self,
        settings: DriftSettings,
        identity: AgentIdentity,
        session: SessionRecord,
        task_id: str,
        mark: SessionMark,
        now: int,
    ) -> None:
        """Raises ``AuditUnavailable`` when a crossing cannot be recorded."""
        current = crossings(settings, session, mark, now)
        fresh = {k: v for k, v in current.items() if k not in mark.warned}
        if not fresh:
            return
        mark.warned |= fresh.keys()
        if settings.remind:
            mark.reminder, mark.reminded, mark.block = reminder(list(current.values())), False, None
        for kind, text in fresh.items():
            await self._audit.record(
                AuditEvent(
                    actor="tether",
                    source="tasks",
                    action=f"drift:{kind}",
                    resource=f"task:{task_id}",
                    result="warned",
                    reason=text,
                    code=kind,
                    project_id=identity.project.id,
                    agent_id=identity.agent.id,
                    agent_name=identity.agent.name,
                    session_id=session.id,
                    attributes={
                        "task": task_id,
                        "fill_percent": round(mark.fill_percent, 1),
                        "turns": mark.turns,
                    },
                )
            )
            summary = (
                f"drift warning for agent {identity.agent.name} (project {identity.project.name}) "
                f"in session `{session.id}` on task {task_id}: {text}"
            )
            try:
                await self._alerts.notify(
                    identity.project.id,
                    "task.drift",
                    {
                        "kind": kind,
                        "summary": summary,
                        "project": identity.project.name,
                        "agent": identity.agent.name,
                        "session": session.id,
                        "task": task_id,
                        "reason": text,
                    },
                )
            except TetherError as exc:
                log.warning("drift alert for session %s not queued: %s", session.id, exc.message)
