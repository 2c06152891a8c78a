"""Admin: a project's policy held against its audit trail — replay a candidate over past
decisions, suggest a least-privilege policy from them, lint a policy. The trail is read a
page at a time and folded off the event loop, so a week of a million decisions holds no
other request up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

from aiohttp import web

from tether.admin.appkeys import runtime_of
from tether.admin.policy_trail_schemas import (
    ChangeOut,
    FindingOut,
    LintOut,
    LintRun,
    ReplayOut,
    ReplayRun,
    SuggestOut,
    SuggestRun,
)
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.clock import now_ms
from tether.errors import BadRequest, TetherError
from tether.policy.compiled import compile_policy
from tether.policy.lint import lint_policy
from tether.policy.replay import ExpectedChange, replay
from tether.policy.suggest import GENERALISATIONS, suggest_policy
from tether.policy.trail import TrailSummary, fold_trail
from tether.runtime import Runtime
from tether.web.bodies import read_model


async def _trail(
    runtime: Runtime, project_id: str, since_seconds: int, agent: str | None = None
) -> TrailSummary:
    summary = TrailSummary()
    until = now_ms() + 1
    pages = runtime.audit_store.decision_rows(
        project_id=project_id, since_ms=until - since_seconds * 1000, until_ms=until
    )
    await fold_trail(pages, summary, agent)
    return summary


@routes.route(
    "POST",
    "/projects/{project}/policy/replay",
    "policy.replay",
    "Re-decide every decision of a period with a candidate policy: what it would newly deny "
    "or allow (nothing is changed)",
    body=ReplayRun,
    response=ReplayOut,
)
async def replay_policy(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, ReplayRun, runtime.settings.max_body_bytes)
    try:
        expected = [ExpectedChange.parse(text) for text in payload.expect]
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    started = time.monotonic()
    candidate = await asyncio.to_thread(compile_policy, payload.source)
    summary = await _trail(runtime, project.id, payload.since_seconds)
    report = await asyncio.to_thread(replay, candidate, project.name, summary.decisions, expected)
    return model_response(
        ReplayOut(
            decisions=report.decisions,
            distinct=report.distinct,
            newly_denied_calls=report.newly_denied_calls,
            newly_allowed_calls=report.newly_allowed_calls,
            newly_denied=[ChangeOut(**asdict(c)) for c in report.newly_denied],
            newly_allowed=[ChangeOut(**asdict(c)) for c in report.newly_allowed],
            unexpected_total=report.unexpected_total,
            unexpected=[ChangeOut(**asdict(c)) for c in report.unexpected],
            seconds=round(time.monotonic() - started, 3),
        )
    )


@routes.route(
    "POST",
    "/projects/{project}/policy/suggest",
    "policy.suggest",
    "A least-privilege Cedar policy from the project's decisions of a period",
    body=SuggestRun,
    response=SuggestOut,
)
async def suggest(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, SuggestRun, runtime.settings.max_body_bytes)
    unknown = set(payload.generalise) - GENERALISATIONS
    if unknown:
        raise BadRequest(
            f"--generalise {', '.join(sorted(unknown))}: choose from "
            f"{', '.join(sorted(GENERALISATIONS))}"
        )
    if payload.agent is not None:
        await runtime.agents.by_name(payload.agent)
    summary = await _trail(runtime, project.id, payload.since_seconds, payload.agent)
    if not summary.decisions:
        raise TetherError(
            f"project {project.name} has no decisions in the period to learn from; widen "
            "--since or connect its agents first",
            code="nothing_to_suggest",
        )
    suggestion = await asyncio.to_thread(
        suggest_policy, project.name, summary.decisions, frozenset(payload.generalise)
    )
    return model_response(
        SuggestOut(
            source=suggestion.source,
            rules=suggestion.rules,
            covered_calls=suggestion.covered_calls,
            resources=suggestion.resources,
            decisions=summary.total,
        )
    )


@routes.route(
    "POST",
    "/projects/{project}/policy/lint",
    "policy.lint",
    "Findings on a policy (the one in force, or a candidate): unscoped permits, wildcard "
    "actions, deletions without approval, unused rules, unreachable forbids",
    body=LintRun,
    response=LintOut,
)
async def lint(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, LintRun, runtime.settings.max_body_bytes)
    source = payload.source
    if source is None:
        current = await runtime.policy_store.current(project.id)
        if current is None:
            raise TetherError(
                f"project {project.name} has no policy to lint; apply one first",
                code="no_policy",
            )
        source = current.source
    summary = await _trail(runtime, project.id, payload.days * 86_400)
    in_force = payload.source is None
    findings = await asyncio.to_thread(
        lint_policy,
        source,
        deletion_approval=project.deletion_approval,
        rule_matches=summary.rule_matches if in_force and summary.total else None,
        days=payload.days,
    )
    errors = sum(1 for f in findings if f.severity == "error")
    return model_response(
        LintOut(
            findings=[FindingOut(**asdict(f)) for f in findings],
            errors=errors,
            warnings=len(findings) - errors,
        )
    )
