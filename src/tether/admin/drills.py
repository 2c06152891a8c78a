"""Admin: fire drills — ``POST /drills/{drill}?project=P`` runs one on the live deployment."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from tether.admin.appkeys import runtime_of
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.errors import BadRequest
from tether.readiness.drills import DrillReport, run_drill
from tether.web.bodies import read_optional_model


class DrillRequest(BaseModel):
    door_url: str | None = None
    """Where the canary knocks (another replica's address, to measure a kill across
    replicas); default: this server, as the caller reached it."""


class DrillOut(BaseModel):
    drill: str
    project: str
    ok: bool
    seconds: float
    timings: dict[str, float]
    notes: list[str]

    @classmethod
    def of(cls, report: DrillReport) -> DrillOut:
        return cls(
            drill=report.drill,
            project=report.project,
            ok=report.ok,
            seconds=report.seconds,
            timings=report.timings,
            notes=report.notes,
        )


@routes.route(
    "POST",
    "/drills/{drill}",
    "drills.run",
    "Run a fire drill (kill, pause, audit, rotate) on ?project= with a canary agent",
    body=DrillRequest,
    optional_body=True,
    response=DrillOut,
)
async def run(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    name = request.query.get("project")
    if not name:
        raise BadRequest("a drill needs ?project=NAME: the project whose controls it exercises")
    project = await runtime.projects.by_name(name)
    body = await read_optional_model(request, DrillRequest, runtime.settings.max_body_bytes)
    door_url = body.door_url or str(request.url.origin())
    if not door_url.startswith(("http://", "https://")):
        raise BadRequest(f"door_url={door_url!r} is not an http(s) URL")
    report = await run_drill(runtime, project, request.match_info["drill"], door_url)
    return model_response(DrillOut.of(report))
