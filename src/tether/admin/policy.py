"""Admin: a project's Cedar policy — apply a new version, show it, list versions, and
evaluate probes against the policy in force or a candidate."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.policy_schemas import (
    PolicyApply,
    PolicyCheck,
    PolicyOut,
    Probe,
    ProbeResult,
    ProbeRun,
    ProbeRunOut,
)
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.approvals.rules import approval_reason
from tether.errors import BadRequest, NotFound, TetherError
from tether.policy.compiled import CompiledPolicy, compile_policy
from tether.policy.request import PolicyRequest
from tether.policy.source import split_statements
from tether.records.fleet import Project
from tether.web.bodies import read_model

log = logging.getLogger(__name__)


@routes.route(
    "PUT",
    "/projects/{project}/policy",
    "policy.apply",
    "Validate a Cedar policy and make it the project's new version (422 with line and "
    "column on errors; the version in force stays in force)",
    body=PolicyApply,
    response=PolicyOut,
    status=201,
    also=(200,),
)
async def apply_policy(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, PolicyApply, runtime.settings.max_body_bytes)
    await asyncio.to_thread(compile_policy, payload.source)
    rules = len(split_statements(payload.source))
    current = await runtime.policy_store.current(project.id)
    if current is not None and current.source == payload.source:
        return model_response(PolicyOut.of(current, project.name, rules, changed=False))
    version = await runtime.policy_store.add(
        project.id, payload.source, f"admin:{caller_of(request).name}"
    )
    log.info(
        "policy v%s in force for project %s (%d rules) by admin:%s",
        version.version,
        project.name,
        rules,
        caller_of(request).name,
    )
    return model_response(PolicyOut.of(version, project.name, rules), status=201)


@routes.route(
    "GET",
    "/projects/{project}/policy",
    "policy.show",
    "The policy in force (?version=N: an earlier version, e.g. to roll back to it)",
    response=PolicyOut,
)
async def show_policy(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    wanted = request.query.get("version")
    if wanted is not None:
        if not wanted.isdigit():
            raise BadRequest(f"version={wanted!r} is not a version number")
        version = await runtime.policy_store.get(project.id, int(wanted))
        if version is None:
            raise NotFound(f"project {project.name!r} has no policy version {wanted}")
    else:
        version = await runtime.policy_store.current(project.id)
    if version is None:
        raise NotFound(
            f"project {project.name!r} has no policy yet: every action but model calls is "
            "denied; apply one with `tether policy apply FILE`"
        )
    rules = len(split_statements(version.source))
    return model_response(PolicyOut.of(version, project.name, rules))


@routes.route(
    "POST",
    "/projects/{project}/policy/validate",
    "policy.validate",
    "Check a candidate policy without applying it (422 with line and column on errors)",
    body=PolicyApply,
    response=PolicyCheck,
)
async def validate_policy(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, PolicyApply, runtime.settings.max_body_bytes)
    await asyncio.to_thread(compile_policy, payload.source)
    return model_response(PolicyCheck(valid=True, rules=len(split_statements(payload.source))))


@routes.route(
    "GET",
    "/projects/{project}/policy/versions",
    "policy.versions",
    "Every version of the project's policy, newest first",
    response=PolicyOut,
    many=True,
)
async def policy_versions(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    versions = await runtime.policy_store.history(project.id)
    return model_list_response(
        [PolicyOut.of(v, project.name, len(split_statements(v.source))) for v in versions]
    )


def _probe_result(compiled: CompiledPolicy, project: Project, probe: Probe) -> ProbeResult:
    answer = compiled.evaluate(
        PolicyRequest(probe.agent, project.name, probe.action, probe.resource, probe.tags)
    )
    if answer.effect == "deny":
        return ProbeResult(decision="deny", reason=answer.reason, rules=list(answer.rules))
    asked = answer.reason if answer.effect == "ask" else None
    why = approval_reason(probe.action, project, asked)
    if why is not None:
        return ProbeResult(decision="approval", reason=why, rules=list(answer.rules))
    return ProbeResult(decision="allow", reason=answer.reason, rules=list(answer.rules))


@routes.route(
    "POST",
    "/projects/{project}/policy/evaluate",
    "policy.evaluate",
    "Decide probes (agent, action, resource, tags) against the policy in force or a "
    "candidate; nothing is recorded as an agent action",
    body=ProbeRun,
    response=ProbeRunOut,
)
async def evaluate_probes(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, ProbeRun, runtime.settings.max_body_bytes)
    version: int | None = None
    if payload.source is not None:
        compiled = await asyncio.to_thread(compile_policy, payload.source)
    else:
        in_force = runtime.policies.in_force(project.id)
        if in_force.compiled is None:
            raise TetherError(in_force.problem or "policy unavailable", code="policy_unavailable")
        compiled, version = in_force.compiled, in_force.version
    results = [_probe_result(compiled, project, probe) for probe in payload.probes]
    return model_response(ProbeRunOut(policy_version=version, results=results))
