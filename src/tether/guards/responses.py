"""What a tripped guard does besides refusing: pause or terminate the session (per the
project's ``on_trip``), record a ``guard:<code>`` audit event in the session, and tell the
project's webhooks, once per guard and session."""

from __future__ import annotations

import logging

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import TetherError
from tether.guards.settings import OnTrip
from tether.guards.watches import Trip
from tether.identity.directory import AgentIdentity
from tether.records.fleet import SessionState
from tether.sessions.registry import SessionRegistry
from tether.store.alerts import AlertStore

__all__ = ["TripResponder"]

log = logging.getLogger(__name__)

STATE_FOR = {OnTrip.PAUSE: SessionState.PAUSED, OnTrip.TERMINATE: SessionState.TERMINATED}
OUTCOME_TEXT = {
    OnTrip.DENY: "the call was refused; the session may go on",
    OnTrip.PAUSE: "the session is paused until an operator resumes it",
    OnTrip.TERMINATE: "the session was terminated",
}


class TripResponder:
    def __init__(self, sessions: SessionRegistry, alerts: AlertStore, audit: AuditLog) -> None:
        self._sessions = sessions
        self._alerts = alerts
        self._audit = audit

    async def respond(
        self,
        trip: Trip,
        on_trip: OnTrip,
        identity: AgentIdentity,
        session_id: str,
        alert: bool,
    ) -> bool:
        """Raises ``StoreUnavailable`` when the session's new state cannot be saved, and
        ``AuditUnavailable`` when the trip cannot be recorded. ``alert``: tell the webhooks
        too (the first trip of its kind in the session); returns False when that alert
        could not be queued."""
        log.info(
            "guard %s tripped in session %s (agent %s): %s; %s",
            trip.code,
            session_id,
            identity.agent.name,
            trip.reason,
            OUTCOME_TEXT[on_trip],
        )
        state = STATE_FOR.get(on_trip)
        if state is not None:
            await self._sessions.set_state(session_id, state, f"guard:{trip.code}", trip.reason)
        await self._audit.record(
            AuditEvent(
                actor="tether",
                source="guards",
                action=f"guard:{trip.code}",
                resource=f"session:{session_id}",
                result=on_trip.value,
                reason=f"{trip.reason}; {OUTCOME_TEXT[on_trip]}",
                code=trip.code,
                project_id=identity.project.id,
                agent_id=identity.agent.id,
                agent_name=identity.agent.name,
                session_id=session_id,
                attributes=trip.evidence,
            )
        )
        if not alert:
            return True
        payload = {
            "guard": trip.code,
            "project": identity.project.name,
            "agent": identity.agent.name,
            "session": session_id,
            "reason": trip.reason,
            "outcome": OUTCOME_TEXT[on_trip],
            "evidence": trip.evidence,
        }
        try:
            await self._alerts.notify(identity.project.id, "guard.tripped", payload)
        except TetherError as exc:
            log.warning("guard alert for session %s not queued: %s", session_id, exc.message)
            return False
        return True
