"""Admin: agent sessions."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import runtime_of
from tether.admin.filters import scope_from_query
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import SessionOut
from tether.errors import BadRequest, NotFound
from tether.runtime import Runtime
from tether.store.records import SessionRecord, SessionState


def session_out(runtime: Runtime, session: SessionRecord) -> SessionOut:
    agent = runtime.directory.agent(session.agent_id)
    project = runtime.directory.project(session.project_id)
    return SessionOut.of(session, agent.name if agent else None, project.name if project else None)


@routes.route(
    "GET",
    "/sessions",
    "sessions.list",
    "List sessions, newest activity first (?project=, ?agent=, ?state=)",
    response=SessionOut,
    many=True,
)
async def list_sessions(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    query = request.query
    scope = await scope_from_query(runtime, query)
    state = None
    if "state" in query:
        try:
            state = SessionState(query["state"])
        except ValueError:
            choices = ", ".join(s.value for s in SessionState)
            raise BadRequest(f"state must be one of: {choices}") from None
    sessions = await runtime.session_store.find(scope.project_id, scope.agent_id, state)
    return model_list_response([session_out(runtime, s) for s in sessions])


@routes.route(
    "GET", "/sessions/{session_id}", "sessions.show", "Show a session", response=SessionOut
)
async def show_session(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    session = await session_in_path(runtime, request)
    return model_response(session_out(runtime, session))


async def session_in_path(runtime: Runtime, request: web.Request) -> SessionRecord:
    """The session named by the path's ``{session_id}``; 404 when there is none."""
    session_id = request.match_info["session_id"]
    session = await runtime.session_store.get(session_id)
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    return session
