"""``POST /v1/authorize``: the generic front door, for any agent or tool that can ask first.

Answers 200 allow, 403 deny, or 202 pending with the approval's id. With
``wait_seconds`` a pending request is held (long-poll) until the approval is decided,
then decided again, so an approved action answers allow in the same call.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tether.approvals.waiter import ApprovalWaiter
from tether.errors import BadRequest
from tether.gateway.authorize_request import (
    AuthorizeRequest,
    Unread,
    read_authorize_request,
)
from tether.gateway.credentials import admit_agent, presented_credential
from tether.pipeline import Action, Decision, Pipeline
from tether.pipeline.long_poll import decide_as_one
from tether.web.bodies import read_limited
from tether.web.errors import set_error_renderer
from tether.web.heavy_work import HEAVY_BODY_BYTES
from tether.web.shared_lane import HEAVY_WORK_KEY, heavy_work_of

__all__ = ["AuthorizeRequest", "add_authorize_routes"]

PIPELINE_KEY = web.AppKey("pipeline", Pipeline)
WAITER_KEY = web.AppKey("approval_waiter", ApprovalWaiter)
LIMIT_KEY = web.AppKey("authorize_body_limit", int)
PATH = "/v1/authorize"


def _denial_body(code: str, message: str) -> dict[str, Any]:
    return {"decision": "deny", "error": {"code": code, "message": message}}


def _render(decision: Decision, requested_session: str | None) -> web.Response:
    body: dict[str, Any] = {
        "decision": decision.result,
        "reason": decision.reason,
        "event_id": decision.event_id,
        "session_id": requested_session or decision.session_id,
        "agent": decision.agent_name,
        "project": decision.project_name,
    }
    if decision.pending:
        body["approval_id"] = decision.approval_id
    elif not decision.allowed and decision.code:
        body["error"] = {"code": decision.code, "message": decision.reason}
    return web.json_response(body, status=decision.status)


async def _read(request: web.Request) -> AuthorizeRequest:
    """On the loop when small; a large body (1 MB of small JSON objects holds a loop for
    100 ms) in the shared heavy-work lane. Both run ``read_authorize_request``."""
    body = await read_limited(request, request.app[LIMIT_KEY])
    if len(body) > HEAVY_BODY_BYTES:
        read = await request.app[HEAVY_WORK_KEY].run(read_authorize_request, body, size=len(body))
    else:
        read = read_authorize_request(body)
    if isinstance(read, Unread):
        raise BadRequest(read.message, code=read.code)
    return read


async def authorize(request: web.Request) -> web.Response:
    await admit_agent(request, "authorize")
    payload = await _read(request)
    action = Action(
        source="authorize",
        credential=presented_credential(request.headers),
        action=payload.action,
        resource=payload.resource,
        session_id=payload.session_id,
        attributes=payload.attributes,
        tags=payload.tags,
    )
    decisions = await decide_as_one(
        request.app[PIPELINE_KEY], request.app[WAITER_KEY], [action], payload.wait_seconds
    )
    return _render(decisions[0], payload.session_id)


def add_authorize_routes(
    app: web.Application, pipeline: Pipeline, waiter: ApprovalWaiter, body_limit: int
) -> None:
    app[PIPELINE_KEY] = pipeline
    app[WAITER_KEY] = waiter
    app[LIMIT_KEY] = body_limit
    heavy_work_of(app, ("tether.gateway.authorize_request",))
    app.router.add_post(PATH, authorize)
    set_error_renderer(app, PATH, _denial_body)
