"""Admin: a project's shadow policy — a candidate decided beside the policy in force on
every decision without changing any. Start one, report where it disagreed, promote it to
the policy in force, or clear it."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.policy_schemas import PolicyApply, PolicyOut
from tether.admin.policy_shadow_schemas import (
    DifferenceOut,
    ExampleOut,
    ShadowOut,
    ShadowReportOut,
)
from tether.admin.policy_trail_schemas import MAX_WINDOW_SECONDS
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.clock import iso_ms, now_ms
from tether.errors import BadRequest, NotFound
from tether.policy.compiled import compile_policy
from tether.policy.lint import lint_policy
from tether.policy.shadow_report import ShadowReport, fold_differences
from tether.policy.source import split_statements
from tether.records.fleet import Project
from tether.runtime import Runtime
from tether.store.policy_shadows import PolicyShadow
from tether.web.bodies import read_model

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 7 * 86_400


async def _shadow_of(runtime: Runtime, project: Project) -> PolicyShadow:
    shadow = await runtime.policy_shadows.get(project.id)
    if shadow is None:
        raise NotFound(
            f"project {project.name!r} has no shadow policy; start one with "
            "`tether policy apply FILE -p PROJECT --shadow`",
            code="no_shadow_policy",
        )
    return shadow


@routes.route(
    "PUT",
    "/projects/{project}/policy/shadow",
    "policy.shadow.apply",
    "Validate a candidate policy and run it in shadow: decided beside the policy in force "
    "on every decision, differences recorded, nothing enforced (422 with line and column "
    "on errors)",
    body=PolicyApply,
    response=ShadowOut,
    status=201,
    also=(200,),
)
async def apply_shadow(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, PolicyApply, runtime.settings.max_body_bytes)
    await asyncio.to_thread(compile_policy, payload.source)
    rules = len(split_statements(payload.source))
    findings = await asyncio.to_thread(
        lint_policy, payload.source, deletion_approval=project.deletion_approval
    )
    warnings = [f"line {f.line}: {f.message}" for f in findings]
    current = await runtime.policy_shadows.get(project.id)
    if current is not None and current.source == payload.source:
        out = ShadowOut.of(current, project.name, rules, changed=False)
        return model_response(out.model_copy(update={"warnings": warnings}))
    by = f"admin:{caller_of(request).name}"
    shadow = await runtime.policy_shadows.put(project.id, payload.source, by)
    log.info("shadow policy for project %s (%d rules) by %s", project.name, rules, by)
    out = ShadowOut.of(shadow, project.name, rules)
    return model_response(out.model_copy(update={"warnings": warnings}), status=201)


def _window(request: web.Request) -> int:
    text = request.query.get("since_seconds", str(DEFAULT_WINDOW_SECONDS))
    if not text.isdigit() or not 1 <= int(text) <= MAX_WINDOW_SECONDS:
        raise BadRequest(
            f"since_seconds={text!r}: a whole number of seconds from 1 to {MAX_WINDOW_SECONDS}"
        )
    return int(text)


@routes.route(
    "GET",
    "/projects/{project}/policy/shadow",
    "policy.shadow.report",
    "The shadow policy and where it disagreed with the policy in force since it started "
    "(?since_seconds=N, default 7 days): would deny, would allow, would ask, by rule, "
    "with examples",
    response=ShadowReportOut,
)
async def shadow_report(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    window = _window(request)
    shadow = await _shadow_of(runtime, project)
    until = now_ms() + 1
    since = max(until - window * 1000, shadow.created_at)
    report = ShadowReport()
    pages = runtime.audit_store.decision_pages(
        project_id=project.id, since_ms=since, until_ms=until, attributes_containing='"shadow"'
    )
    async for page in pages:
        await asyncio.to_thread(fold_differences, [page], report)
    groups = [
        DifferenceOut(
            direction=d.direction,
            rule=d.rule,
            count=d.count,
            examples=[
                ExampleOut(
                    at=iso_ms(e.ts),
                    agent=e.agent,
                    action=e.action,
                    resource=e.resource,
                    live=e.live,
                    reason=e.reason,
                )
                for e in d.examples
            ],
        )
        for d in report.ordered()
    ]
    return model_response(
        ShadowReportOut(
            shadow=ShadowOut.of(shadow, project.name, len(split_statements(shadow.source))),
            policy_version=runtime.policies.in_force(project.id).version,
            since=iso_ms(since),
            would_deny=report.calls["would_deny"],
            would_allow=report.calls["would_allow"],
            would_ask=report.calls["would_ask"],
            differences=groups,
        )
    )


@routes.route(
    "POST",
    "/projects/{project}/policy/shadow/promote",
    "policy.shadow.promote",
    "Make the shadow policy the project's new version (as `policy apply` does) and stop shadowing",
    response=PolicyOut,
    status=201,
)
async def promote_shadow(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    shadow = await _shadow_of(runtime, project)
    await asyncio.to_thread(compile_policy, shadow.source)
    by = f"admin:{caller_of(request).name}"
    version = await runtime.policy_shadows.promote(project.id, shadow.sha256, by)
    rules = len(split_statements(version.source))
    log.info(
        "shadow policy promoted: v%s in force for project %s (%d rules) by %s",
        version.version,
        project.name,
        rules,
        by,
    )
    return model_response(PolicyOut.of(version, project.name, rules), status=201)


@routes.route(
    "DELETE",
    "/projects/{project}/policy/shadow",
    "policy.shadow.clear",
    "Stop running the shadow policy (the policy in force is untouched)",
)
async def clear_shadow(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    if not await runtime.policy_shadows.clear(project.id):
        await _shadow_of(runtime, project)
    return web.Response(status=204)
