"""Admin: the kill switch — terminate a session, pause a project, pause the whole fleet."""

from __future__ import annotations

import logging

from aiohttp import web

from tether.admin.appkeys import ADMIN_CALL, caller_of, runtime_of
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.admin.schemas import PauseState, ProjectOut, SessionOut, StateChange
from tether.admin.sessions import session_out
from tether.clock import iso_ms
from tether.errors import Conflict, NotFound
from tether.records.fleet import SessionState
from tether.web.bodies import read_optional_model

log = logging.getLogger(__name__)


async def _change(request: web.Request) -> tuple[str, str]:
    runtime = runtime_of(request)
    change = await read_optional_model(request, StateChange, runtime.settings.max_body_bytes)
    return f"admin:{caller_of(request).name}", change.reason


@routes.route(
    "POST",
    "/sessions/{session_id}/kill",
    "sessions.kill",
    "Terminate a session: its next request is refused and a running stream is cut",
    body=StateChange,
    optional_body=True,
    response=SessionOut,
)
async def kill_session(request: web.Request) -> web.Response:
    return await _session_to(request, SessionState.TERMINATED, set(SessionState))


@routes.route(
    "POST",
    "/sessions/{session_id}/resume",
    "sessions.resume",
    "Resume a paused session (a guard's pause); terminated sessions stay terminated",
    body=StateChange,
    optional_body=True,
    response=SessionOut,
)
async def resume_session(request: web.Request) -> web.Response:
    return await _session_to(request, SessionState.ACTIVE, {SessionState.PAUSED})


async def _session_to(
    request: web.Request, target: SessionState, allowed_from: set[SessionState]
) -> web.Response:
    """Idempotent: a session already in ``target`` is answered as it is. The change, its
    change-log row and the gate's audit event commit together (on SQLite's writer), and
    this process applies it at once (cached session, running streams cut); other
    replicas, and the rest of this one (batches), follow through the change feed."""
    runtime = runtime_of(request)
    session_id = request.match_info["session_id"]
    by, reason = await _change(request)
    call = request[ADMIN_CALL]
    rows = runtime.audit.rows_of([call.event]) if runtime.sqlite_writer is not None else []
    done = await runtime.sessions.transition(session_id, target, allowed_from, by, reason, rows)
    if done is None:
        raise NotFound(f"no session {session_id!r}")
    if done.before.state is target:
        return model_response(session_out(runtime, done.before))
    if not done.changed:
        raise Conflict(
            f"session {session_id} is {done.before.state.value}; it cannot become {target.value}"
        )
    if done.audited:
        call.recorded = True
        runtime.audit.written_with([call.event])
    runtime.inflight.enforce()
    call.applied_here = True
    runtime.feed.wake()
    log.info("session %s %s by %s: %s", session_id, target.value, by, reason or "-")
    return model_response(session_out(runtime, done.after))


async def _pause_project(request: web.Request, paused: bool) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    by, reason = await _change(request)
    if project.paused != paused:
        await runtime.projects.set_paused(project.id, paused, by, reason)
        log.info(
            "project %s %s by %s: %s",
            project.name,
            "paused" if paused else "resumed",
            by,
            reason or "-",
        )
    return model_response(ProjectOut.of(await runtime.projects.by_name(project.name)))


@routes.route(
    "POST",
    "/projects/{project}/pause",
    "projects.pause",
    "Pause a project: every agent in it is refused, running streams are cut",
    body=StateChange,
    optional_body=True,
    response=ProjectOut,
)
async def pause_project(request: web.Request) -> web.Response:
    return await _pause_project(request, True)


@routes.route(
    "POST",
    "/projects/{project}/resume",
    "projects.resume",
    "Resume a paused project",
    body=StateChange,
    optional_body=True,
    response=ProjectOut,
)
async def resume_project(request: web.Request) -> web.Response:
    return await _pause_project(request, False)


async def _fleet(request: web.Request, paused: bool) -> web.Response:
    runtime = runtime_of(request)
    by, reason = await _change(request)
    await runtime.controls.set_pause_all(paused, by, reason)
    log.info("fleet %s by %s: %s", "paused" if paused else "resumed", by, reason or "-")
    await runtime.feed.catch_up()
    return _fleet_state(request)


def _fleet_state(request: web.Request) -> web.Response:
    control = runtime_of(request).controls.pause_all
    state = PauseState(
        paused=control is not None,
        by=control.updated_by if control else None,
        reason=control.reason if control else None,
        at=iso_ms(control.updated_at) if control else None,
    )
    return model_response(state)


@routes.route(
    "POST",
    "/pause",
    "fleet.pause",
    "Pause every agent of every project",
    body=StateChange,
    optional_body=True,
    response=PauseState,
)
async def pause_fleet(request: web.Request) -> web.Response:
    return await _fleet(request, True)


@routes.route(
    "POST",
    "/resume",
    "fleet.resume",
    "Lift the fleet-wide pause",
    body=StateChange,
    optional_body=True,
    response=PauseState,
)
async def resume_fleet(request: web.Request) -> web.Response:
    return await _fleet(request, False)


@routes.route("GET", "/pause", "fleet.state", "Whether the fleet is paused", response=PauseState)
async def fleet_state(request: web.Request) -> web.Response:
    return _fleet_state(request)
