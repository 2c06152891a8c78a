"""Whether the fleet, a project, an agent or a session has been stopped, and by whom.

One answer for two callers: the pipeline stage (new requests) and the in-flight stream
registry (streams already running), so both stop for exactly the same reasons.
"""

from __future__ import annotations

from tether.clock import iso_ms
from tether.identity.directory import Directory
from tether.kill.controls import FleetControls
from tether.records.fleet import AgentState, SessionRecord, SessionState
from tether.records.verdicts import Deny
from tether.sessions.registry import SessionRegistry

__all__ = ["KillSwitch"]


def _by(who: str | None, reason: str | None, at: int | None = None) -> str:
    text = f" by {who or 'an operator'}"
    if at is not None:
        text += f" at {iso_ms(at)}"
    if reason:
        text += f": {reason}"
    return text


class KillSwitch:
    def __init__(
        self, directory: Directory, sessions: SessionRegistry, controls: FleetControls
    ) -> None:
        self._directory = directory
        self._sessions = sessions
        self._controls = controls

    def reason_to_stop(self, agent_id: str, project_id: str, session_id: str | None) -> Deny | None:
        """From memory: a session this process does not hold counts as running (a stopped
        one is held even after it left the cache: ``SessionRegistry._hold``)."""
        session = self._sessions.cached(session_id) if session_id else None
        return self._stop_reason(agent_id, project_id, session)

    async def reason_to_stop_now(
        self, agent_id: str, project_id: str, session_id: str | None
    ) -> Deny | None:
        """As ``reason_to_stop``, with a session this process does not hold read from the
        store: for what outlives the calls that held it (a message batch runs for hours,
        across restarts, while its session leaves every replica's memory)."""
        session = await self._sessions.current(session_id) if session_id else None
        return self._stop_reason(agent_id, project_id, session)

    def _stop_reason(
        self, agent_id: str, project_id: str, session: SessionRecord | None
    ) -> Deny | None:
        paused = self._controls.pause_all
        if paused is not None:
            return Deny(
                "fleet_paused",
                "tether: every agent is paused"
                + _by(paused.updated_by, paused.reason, paused.updated_at),
            )
        project = self._directory.project(project_id)
        if project is not None and project.paused:
            return Deny(
                "project_paused",
                f"tether: project {project.name!r} is paused"
                + _by(project.state_by, project.state_reason, project.state_at),
            )
        agent = self._directory.agent(agent_id)
        if agent is not None and agent.state is not AgentState.ACTIVE:
            return self._agent_denial(agent.name, agent.state, agent.state_by, agent.state_reason)
        if session is not None and session.state is not SessionState.ACTIVE:
            if session.state is SessionState.BUDGET_EXHAUSTED:
                return Deny(
                    "session_budget_exhausted",
                    f"tether: session {session.id} has exhausted its budget: "
                    f"{session.state_reason}",
                )
            return Deny(
                f"session_{session.state.value}",
                f"tether: session {session.id} was {session.state.value}"
                + _by(session.state_by, session.state_reason, session.state_at),
            )
        return None

    @staticmethod
    def _agent_denial(name: str, state: AgentState, by: str | None, reason: str | None) -> Deny:
        if state is AgentState.QUARANTINED:
            return Deny(
                "agent_quarantined",
                f"tether: agent {name!r} is quarantined{_by(by, reason)}; every action is denied "
                "until an operator releases it",
            )
        if state is AgentState.STOPPED:
            return Deny("agent_stopped", f"tether: agent {name!r} was stopped{_by(by, reason)}")
        return Deny("agent_revoked", f"tether: agent {name!r} has been revoked{_by(by, reason)}")
