"""Admin: agent sessions."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from tether.admin.appkeys import runtime_of
from tether.admin.filters import scope_from_query
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import SessionOut
from tether.errors import BadRequest, NotFound
from tether.records.fleet import SessionRecord, SessionState
from tether.runtime import Runtime
from tether.web.headers import NEXT_PAGE_HEADER

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


def session_out(runtime: Runtime, session: SessionRecord) -> SessionOut:
    agent = runtime.directory.agent(session.agent_id)
    project = runtime.directory.project(session.project_id)
    return SessionOut.of(session, agent.name if agent else None, project.name if project else None)


@routes.route(
    "GET",
    "/sessions",
    "sessions.list",
    "List sessions, newest activity first (?project=, ?agent=, ?state=, ?limit=, ?before=); "
    "a cut list names its next page in X-Tether-Next-Page",
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
    limit = _limit(query.get("limit"))
    sessions = await runtime.session_store.find(
        scope.project_id, scope.agent_id, state, limit=limit + 1, before=_cursor(query)
    )
    response = model_list_response([session_out(runtime, s) for s in sessions[:limit]])
    if len(sessions) > limit:
        last = sessions[limit - 1]
        response.headers[NEXT_PAGE_HEADER] = f"before={last.last_activity_at}:{last.id}"
    return response


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _cursor(query: Mapping[str, str]) -> tuple[int, str] | None:
    """``before=MS:ID`` from a previous page's ``X-Tether-Next-Page``."""
    value = query.get("before")
    if value is None:
        return None
    ms, _, session_id = value.partition(":")
    if not ms.isdigit() or not session_id:
        raise BadRequest(f"before={value!r} is not a cursor from a previous page (MS:ID)")
    return int(ms), session_id


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
