"""Admin: fire drills — ``POST /projects/{project}/drills/{drill}`` runs one on the live
deployment."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from tether.admin.appkeys import runtime_of
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.errors import NotFound
from tether.readiness.drills import DRILLS, DrillReport, run_drill
from tether.web.bodies import read_optional_model


class DrillRequest(BaseModel):
    door_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/.*)?$", max_length=512)
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
    "/projects/{project}/drills/{drill}",
    "drills.run",
    "Run a fire drill (kill, pause, audit, rotate) on the project with a canary agent",
    body=DrillRequest,
    optional_body=True,
    response=DrillOut,
)
async def run(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    kind = request.match_info["drill"]
    if kind not in DRILLS:
        raise NotFound(f"no drill named {kind!r}: use one of {', '.join(DRILLS)}")
    body = await read_optional_model(request, DrillRequest, runtime.settings.max_body_bytes)
    door_url = body.door_url or str(request.url.origin())
    report = await run_drill(runtime, project, kind, door_url)
    return model_response(DrillOut.of(report))
