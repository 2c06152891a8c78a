"""Admin: a project's runaway-loop guards (repeats, retries, progress, circuit breaker)."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import runtime_of
from tether.admin.guard_schemas import GuardsOut, GuardsUpdate
from tether.admin.patches import changes_in
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.guards.settings import load_guard_settings
from tether.web.bodies import read_model

NOT_NULL = frozenset(
    {
        "repeat_window_seconds",
        "breaker_cooldown_seconds",
        "breaker_max_cooldown_seconds",
        "on_trip",
        "require_hooks",
    }
)


@routes.route(
    "GET",
    "/projects/{project}/guards",
    "guards.show",
    "Show a project's runaway-loop guards",
    response=GuardsOut,
)
async def show_guards(request: web.Request) -> web.Response:
    project = await runtime_of(request).projects.by_name(request.match_info["project"])
    return model_response(GuardsOut.of(project.name, load_guard_settings(project.guards)))


@routes.route(
    "PATCH",
    "/projects/{project}/guards",
    "guards.update",
    "Change a project's guards; in force on every replica within a second",
    body=GuardsUpdate,
    response=GuardsOut,
)
async def update_guards(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, GuardsUpdate, runtime.settings.max_body_bytes)
    changes = changes_in(payload, NOT_NULL)
    settings = load_guard_settings(project.guards).updated(changes)
    await runtime.projects.update(project.id, {"guards": settings.to_json()})
    await runtime.directory.project_changed(project.id)
    return model_response(GuardsOut.of(project.name, settings))
