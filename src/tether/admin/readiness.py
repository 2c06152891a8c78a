"""Admin: readiness — per project, each check pass / warn / fail with evidence and fix."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response
from tether.admin.routing import routes
from tether.audit.event import AuditEvent
from tether.readiness import CheckResult, assess_project
from tether.runtime import Runtime
from tether.web.bodies import read_model


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


class ProbeRunRecord(BaseModel):
    """What a ``tether policy probe`` run found, for the readiness check to read."""

    agent: str = Field(min_length=1, max_length=64)
    session: str = Field(min_length=1, max_length=128)
    probes: int = Field(ge=0)
    allowed: int = Field(ge=0)


@routes.route(
    "POST",
    "/projects/{project}/policy/probes",
    "policy.probes.record",
    "Record a `tether policy probe` run (policy:probe event): readiness asks whether the "
    "policy was probed since it last changed",
    body=ProbeRunRecord,
    status=204,
)
async def record_probe_run(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    run = await read_model(request, ProbeRunRecord, runtime.settings.max_body_bytes)
    version = runtime.policies.in_force(project.id).version
    await runtime.audit.record(
        AuditEvent(
            actor=f"admin:{caller_of(request).name}",
            source="admin",
            action="policy:probe",
            resource=f"policy:{project.name}",
            result="ok" if run.allowed == 0 else "error",
            reason=f"{run.probes - run.allowed} of {run.probes} out-of-scope actions refused "
            f"for {run.agent} (session {run.session})",
            project_id=project.id,
            attributes={"policy_version": version, "probes": run.probes, "allowed": run.allowed},
        )
    )
    return web.Response(status=204)
