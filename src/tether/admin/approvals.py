"""Admin: the approvals queue — list, show, approve, deny. Each decision is also written
to the audit trail under the session that asked, so a replay shows who said yes, when."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.approval_schemas import ApprovalDecide, ApprovalDeny, ApprovalOut
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.audit.event import AuditEvent
from tether.errors import BadRequest
from tether.runtime import Runtime
from tether.store.approvals import APPROVED, DENIED, EXPIRED, PENDING, USED, ApprovalRecord
from tether.store.clock import now_ms
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


def _narrowed(
    record: ApprovalRecord, payload: ApprovalDecide, asked_ttl: int
) -> tuple[int, int | None, str | None]:
    """The grant the approver chose: what was asked, or narrower — never wider."""
    ttl = payload.ttl_seconds or asked_ttl
    if not record.grouped:
        if payload.max_uses not in (None, 1) or payload.prefix is not None:
            raise BadRequest(
                f"approval {record.id} is for one action on one resource; --max and --prefix "
                "apply only to a group (one with a prefix)"
            )
        return ttl, None, None
    assert record.scope_prefix is not None
    if payload.ttl_seconds is not None and payload.ttl_seconds > asked_ttl:
        raise BadRequest(
            f"ttl_seconds {payload.ttl_seconds} is longer than the {asked_ttl} s asked; "
            "an approver may shorten a group's grant, not lengthen it"
        )
    if payload.max_uses is not None and payload.max_uses > record.item_count:
        raise BadRequest(
            f"max_uses {payload.max_uses} is more than the {record.item_count} actions "
            f"asked under {record.scope_prefix}; use {record.item_count} or fewer"
        )
    if payload.prefix is not None and not payload.prefix.startswith(record.scope_prefix):
        raise BadRequest(
            f"prefix {payload.prefix!r} is not under the asked prefix "
            f"{record.scope_prefix!r}; an approver may narrow it, not widen it"
        )
    if payload.prefix is None and record.item_count == 1:
        return ttl, None, None  # a group of one: decided as that one action (store.decide)
    return ttl, payload.max_uses or record.item_count, payload.prefix or record.scope_prefix


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


async def _record_decision(runtime: Runtime, record: ApprovalRecord, actor: str) -> None:
    agent = runtime.directory.agent(record.agent_id)
    await runtime.audit.record(
        AuditEvent(
            actor=actor,
            source="admin",
            action=f"approval:{record.state}",
            resource=record.resource,
            result=record.state,
            reason=record.decision_reason or "",
            project_id=record.project_id,
            agent_id=record.agent_id,
            agent_name=agent.name if agent else None,
            session_id=record.session_id,
            attributes={"approval_id": record.id, "action": record.action},
        )
    )


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
    record = await runtime.approvals.get(request.match_info["approval_id"])
    project = runtime.directory.project(record.project_id)
    ttl, max_uses, prefix = _narrowed(
        record, payload, project.approval_ttl_seconds if project else 3600
    )
    actor = f"admin:{caller_of(request).name}"
    decided = await runtime.approvals.decide(
        record.id, True, actor, payload.reason, ttl * 1000, max_uses, prefix
    )
    await _record_decision(runtime, decided, actor)
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
    actor = f"admin:{caller_of(request).name}"
    decided = await runtime.approvals.decide(
        request.match_info["approval_id"], False, actor, payload.reason, 0
    )
    await _record_decision(runtime, decided, actor)
    return model_response(_out(runtime, decided))
