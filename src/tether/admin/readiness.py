"""Admin: readiness — per project, each check pass / warn / fail with evidence and fix."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from tether.admin.appkeys import runtime_of
from tether.admin.responses import model_list_response
from tether.admin.routing import routes
from tether.readiness import CheckResult, assess_project
from tether.runtime import Runtime


class CheckOut(BaseModel):
    check: str
    status: str
    evidence: str
    fix: str

    @classmethod
    def of(cls, result: CheckResult) -> CheckOut:
        return cls(
            check=result.check, status=result.status.value, evidence=result.evidence, fix=result.fix
        )


class ProjectReadinessOut(BaseModel):
    project: str
    status: str
    checks: list[CheckOut]


async def readiness(runtime: Runtime, project_name: str | None) -> list[ProjectReadinessOut]:
    """Assess the named project or every project, and publish ``tether_readiness``."""
    if project_name:
        projects = [await runtime.projects.by_name(project_name)]
    else:
        projects = await runtime.projects.all()
    out = []
    for project in projects:
        results = await assess_project(runtime, project)
        for r in results:
            runtime.metrics.readiness_checked(project.name, r.check, r.status.score)
        statuses = {r.status.value for r in results}
        worst = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
        out.append(
            ProjectReadinessOut(
                project=project.name, status=worst, checks=[CheckOut.of(r) for r in results]
            )
        )
    return out


@routes.route(
    "GET",
    "/readiness",
    "readiness.show",
    "Readiness of each project (?project=): every check pass, warn or fail, with the fix",
    response=ProjectReadinessOut,
    many=True,
)
async def show_readiness(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    return model_list_response(await readiness(runtime, request.query.get("project")))
