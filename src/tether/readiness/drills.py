"""Fire drills on the live deployment, with a canary agent tether creates and revokes.

A drill goes through the real front doors over HTTP (the Messages door with the canary
model tether answers itself, the Claude Code hook door and, when the project's AWS broker
is configured, the broker door: ``readiness/doors.py``), applies a control the way an
operator would, and measures how long until each door refuses the canary. It touches
nothing but the canary: no real agent is paused, stopped or rotated, and the drill checks
that no other session of the project was refused while it ran. Each drill is one
``drill:<kind>`` audit event with its timings; readiness checks read those events."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx

from tether.audit.event import AuditEvent
from tether.clock import new_id, now_ms
from tether.errors import BadRequest
from tether.gateway.aws.upstream import AwsNotConfigured
from tether.readiness.doors import BrokerPair, Canary, Doors
from tether.records.fleet import AgentState, SessionState
from tether.store.readiness import ReadinessQueries

if TYPE_CHECKING:
    from tether.records.fleet import Project
    from tether.runtime import Runtime

__all__ = ["DRILLS", "TARGET_SECONDS", "DrillReport", "run_drill"]

DRILLS = ("kill", "pause", "audit", "rotate")
TARGET_SECONDS = {"kill": 1.0, "pause": 1.0, "audit": 10.0, "rotate": 1.0}
"""A drill slower than its target fails: the targets the readiness guidance sets."""
GIVE_UP_SECONDS = 10.0
POLL_SECONDS = 0.005
SESSION_PAGE = 200
SESSION_PAGES = 50
"""The audit drill looks this far back (10,000 sessions) for a real agent's session."""
BY = "drill"


@dataclass
class DrillReport:
    drill: str
    project: str
    ok: bool = True
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def fail(self, note: str) -> None:
        self.ok = False
        self.notes.append(note)


async def _until_refused(doors: Doors, canary: Canary, door: str, started: float) -> float | None:
    """Seconds from ``started`` until ``door`` refuses the canary; None if it never does."""
    while time.perf_counter() - started < GIVE_UP_SECONDS:
        open_, _ = await doors.knock(door, canary)
        if not open_:
            return time.perf_counter() - started
        await asyncio.sleep(POLL_SECONDS)
    return None


async def _create_canary(runtime: Runtime, project: Project) -> Canary:
    name = f"canary-{new_id()[:12]}"
    agent, issued = await runtime.agents.create(
        name, project.id, "readiness drill canary: created and revoked by tether drill"
    )
    broker = await _broker_pair(runtime, project, agent.id)
    await runtime.feed.catch_up()
    return Canary(agent.id, name, issued.secret, f"drill-{new_id()}", broker)


async def _broker_pair(runtime: Runtime, project: Project, agent_id: str) -> BrokerPair | None:
    """The canary's own AWS key pair, when the project's broker is configured."""
    try:
        config = await runtime.aws.config(project.id, project.name)
    except AwsNotConfigured:
        return None
    issued = await runtime.aws_keys.issue(agent_id)
    return BrokerPair(issued.key.access_key_id, issued.secret_access_key, config.region)


async def _remove_canary(runtime: Runtime, canary: Canary) -> None:
    if canary.broker is not None:
        await runtime.aws_keys.revoke(canary.agent_id)
    await runtime.agents.set_state(canary.agent_id, AgentState.REVOKED, BY, "drill finished")
    await runtime.feed.catch_up()


async def _others_refused(runtime: Runtime, project: Project, canary: Canary, since: int) -> int:
    return await ReadinessQueries(runtime.db).refusals_except(project.id, canary.agent_id, since)


async def _measure_stop(
    runtime: Runtime, doors: Doors, canary: Canary, report: DrillReport, state: SessionState
) -> None:
    opened = await doors.all_open(canary)
    for door, (open_, why) in opened.items():
        if not open_:
            report.fail(f"the {door} door refused the canary before the drill: {why}")
    if not report.ok:
        return
    started = time.perf_counter()
    await runtime.sessions.set_state(canary.session_id, state, BY, f"{report.drill} drill")
    report.timings["control_applied"] = round(time.perf_counter() - started, 4)
    took = await asyncio.gather(
        *(_until_refused(doors, canary, door, started) for door in canary.doors)
    )
    for door, seconds in zip(canary.doors, took, strict=True):
        if seconds is None:
            report.fail(f"the {door} door still let the canary through after {GIVE_UP_SECONDS} s")
        else:
            report.timings[f"{door}_refused"] = round(seconds, 4)
    report.seconds = max(report.timings.values(), default=0.0)


async def _kill(runtime: Runtime, doors: Doors, canary: Canary, report: DrillReport) -> None:
    await _measure_stop(runtime, doors, canary, report, SessionState.TERMINATED)


async def _pause(runtime: Runtime, doors: Doors, canary: Canary, report: DrillReport) -> None:
    await _measure_stop(runtime, doors, canary, report, SessionState.PAUSED)
    if not report.ok:
        return
    started = time.perf_counter()
    await runtime.sessions.set_state(canary.session_id, SessionState.ACTIVE, BY, "pause drill")
    while time.perf_counter() - started < GIVE_UP_SECONDS:
        opened = await doors.all_open(canary)
        if all(open_ for open_, _ in opened.values()):
            report.timings["resumed"] = round(time.perf_counter() - started, 4)
            return
        await asyncio.sleep(POLL_SECONDS)
    report.fail("the canary was still refused after resuming")


async def _rotate(runtime: Runtime, doors: Doors, canary: Canary, report: DrillReport) -> None:
    project_id = (await runtime.agents.get(canary.agent_id)).project_id  # type: ignore[union-attr]
    others_before = {
        a.id: [k.id for k in await runtime.agents.live_keys(a.id)]
        for a in await runtime.agents.all(project_id)
        if a.id != canary.agent_id
    }
    if not (await doors.model(canary.key, canary.session_id))[0]:
        report.fail("the canary's key was refused before the rotation")
        return
    started = time.perf_counter()
    issued, _ = await runtime.agents.rotate_key(canary.agent_id, 0)
    await runtime.feed.catch_up()
    old_key, canary.key = canary.key, issued.secret
    while time.perf_counter() - started < GIVE_UP_SECONDS:
        if not (await doors.model(old_key, canary.session_id))[0]:
            report.timings["old_key_refused"] = round(time.perf_counter() - started, 4)
            break
        await asyncio.sleep(POLL_SECONDS)
    else:
        report.fail("the canary's old key still worked after the rotation")
    if not (await doors.model(canary.key, canary.session_id))[0]:
        report.fail("the canary's new key was refused")
    others_after = {a: [k.id for k in await runtime.agents.live_keys(a)] for a in others_before}
    if others_after != others_before:
        report.fail("another agent's keys changed during the rotation")
    report.seconds = report.timings.get("old_key_refused", GIVE_UP_SECONDS)


async def _audit(runtime: Runtime, project: Project, report: DrillReport) -> None:
    """ "What did this agent do between 14:00 and 14:30?" for the project's most recently
    active real agent, on the last day that window has passed, in the project's zone."""
    agent_id = await _latest_real_agent(runtime, project)
    if agent_id is None:
        report.fail("no real agent of the project has a session to ask about")
        return
    agent = runtime.directory.agent(agent_id)
    zone = ZoneInfo(project.timezone)
    now = datetime.now(zone)
    day = (
        now.date()
        if now.hour * 60 + now.minute >= 14 * 60 + 30
        else (now - timedelta(days=1)).date()
    )
    start = datetime(day.year, day.month, day.day, 14, 0, tzinfo=zone)
    since = int(start.timestamp() * 1000)
    started = time.perf_counter()
    events = await runtime.audit_store.query(
        agent_id=agent_id, since_ms=since, until_ms=since + 30 * 60_000, limit=100_000
    )
    report.seconds = round(time.perf_counter() - started, 4)
    report.timings["audit_window"] = report.seconds
    name = agent.name if agent else agent_id
    report.notes.append(f"{len(events)} events of {name} between 14:00 and 14:30 on {day}")


async def _latest_real_agent(runtime: Runtime, project: Project) -> str | None:
    """The agent of the project's most recently active session that is not a canary. Pages
    past canary sessions: drills on a schedule leave one each, so the latest page can hold
    nothing else."""
    before: tuple[int, str] | None = None
    for _ in range(SESSION_PAGES):
        page = await runtime.session_store.find(project.id, limit=SESSION_PAGE, before=before)
        for session in page:
            if not _is_canary(runtime, session.agent_id):
                return session.agent_id
        if len(page) < SESSION_PAGE:
            return None
        before = (page[-1].last_activity_at, page[-1].id)
    return None


def _is_canary(runtime: Runtime, agent_id: str) -> bool:
    agent = runtime.directory.agent(agent_id)
    return agent is not None and agent.name.startswith("canary-")


async def run_drill(runtime: Runtime, project: Project, kind: str, door_url: str) -> DrillReport:
    """Run one drill on ``project`` through the doors at ``door_url``; audited, metered."""
    if kind not in DRILLS:
        raise BadRequest(f"unknown drill {kind!r}: use one of {', '.join(DRILLS)}")
    report = DrillReport(kind, project.name)
    since = now_ms()
    if kind == "audit":
        await _audit(runtime, project, report)
    else:
        canary = await _create_canary(runtime, project)
        doors = Doors(door_url)
        try:
            drill = {"kill": _kill, "pause": _pause, "rotate": _rotate}[kind]
            await drill(runtime, doors, canary, report)
        except httpx.HTTPError as exc:
            report.fail(f"a door at {door_url} did not answer: {exc!r}")
        finally:
            await doors.close()
            await _remove_canary(runtime, canary)
        refused = await _others_refused(runtime, project, canary, since)
        if refused:
            report.fail(f"{refused} refusals of other sessions of the project during the drill")
        report.notes.append(f"canary {canary.name} created and revoked")
    if report.ok and report.seconds > TARGET_SECONDS[kind]:
        report.fail(f"took {report.seconds:.3f} s, slower than the {TARGET_SECONDS[kind]} s target")
    await _record(runtime, project, report)
    runtime.metrics.drilled(project.name, kind, report.seconds)
    return report


async def _record(runtime: Runtime, project: Project, report: DrillReport) -> None:
    await runtime.audit.record(
        AuditEvent(
            actor="tether:drill",
            source="drill",
            action=f"drill:{report.drill}",
            resource=f"project:{project.name}",
            result="ok" if report.ok else "error",
            reason="; ".join(report.notes) or f"{report.drill} drill passed",
            project_id=project.id,
            attributes={"seconds": report.seconds, "timings": report.timings},
        )
    )
