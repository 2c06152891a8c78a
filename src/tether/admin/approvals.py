"""Admin: the approvals queue — list, show, approve, deny. Each decision is also written
to the audit trail under the session that asked, so a replay shows who said yes, when."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.approval_schemas import ApprovalDecide, ApprovalDeny, ApprovalOut
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.approvals.decisions import Decider, GrantAsked
from tether.clock import now_ms
from tether.errors import BadRequest
from tether.runtime import Runtime
from tether.store.approvals import APPROVED, DENIED, EXPIRED, PENDING, USED, ApprovalRecord
from tether.web.bodies import read_model

STATES = (PENDING, APPROVED, DENIED, USED, EXPIRED)


def _out(runtime: Runtime, record: ApprovalRecord) -> ApprovalOut:
    project = runtime.directory.project(record.project_id)
    agent = runtime.directory.agent(record.agent_id)
    return ApprovalOut.of(
        record,
        record.state_at(now_ms()),
        project.name if project else record.project_id,
        agent.name if agent else record.agent_id,
        project.approval_ttl_seconds if project else None,
    )


@routes.route(
    "GET",
    "/approvals",
    "approvals.list",
    "Approvals, newest first (?project=NAME, ?state=pending|approved|denied|used|expired)",
    response=ApprovalOut,
    many=True,
)
async def list_approvals(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise BadRequest(f"unknown state {state!r}; use one of: {', '.join(STATES)}")
    project = request.query.get("project")
    project_id = (await runtime.projects.by_name(project)).id if project else None
    records = await runtime.approvals.find(project_id, state)
    return model_list_response([_out(runtime, r) for r in records])


@routes.route(
    "GET", "/approvals/{approval_id}", "approvals.show", "Show an approval", response=ApprovalOut
)
async def show_approval(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    record = await runtime.approvals.get(request.match_info["approval_id"])
    return model_response(_out(runtime, record))


@routes.route(
    "POST",
    "/approvals/{approval_id}/approve",
    "approvals.approve",
    "Approve a pending approval: that action on that resource in that session, once; for a "
    "group, up to max_uses actions under its prefix (narrow with max_uses, prefix, ttl_seconds)",
    body=ApprovalDecide,
    response=ApprovalOut,
)
async def approve(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, ApprovalDecide, runtime.settings.max_body_bytes)
    decided = await runtime.approval_decider.approve(
        request.match_info["approval_id"],
        Decider(f"admin:{caller_of(request).name}"),
        payload.reason,
        GrantAsked(payload.ttl_seconds, payload.max_uses, payload.prefix),
    )
    return model_response(_out(runtime, decided))


@routes.route(
    "POST",
    "/approvals/{approval_id}/deny",
    "approvals.deny",
    "Deny a pending approval; the agent's retries of it are denied with your reason",
    body=ApprovalDeny,
    response=ApprovalOut,
)
async def deny(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, ApprovalDeny, runtime.settings.max_body_bytes)
    decided = await runtime.approval_decider.deny(
        request.match_info["approval_id"],
        Decider(f"admin:{caller_of(request).name}"),
        payload.reason,
    )
    return model_response(_out(runtime, decided))
