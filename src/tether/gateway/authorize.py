"""``POST /v1/authorize``: the generic front door, for any agent or tool that can ask first.

Answers 200 allow, 403 deny, or 202 pending with the approval's id. With
``wait_seconds`` a pending request is held (long-poll) until the approval is decided,
then decided again, so an approved action answers allow in the same call.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from tether.approvals.waiter import ApprovalWaiter
from tether.gateway.credentials import admit_agent, presented_credential
from tether.pipeline import Action, Decision, Pipeline
from tether.pipeline.long_poll import decide_as_one
from tether.web.bodies import read_model
from tether.web.errors import set_error_renderer

__all__ = ["AuthorizeRequest", "add_authorize_routes"]

PIPELINE_KEY = web.AppKey("pipeline", Pipeline)
WAITER_KEY = web.AppKey("approval_waiter", ApprovalWaiter)
MAX_WAIT_SECONDS = 60
LIMIT_KEY = web.AppKey("authorize_body_limit", int)
PATH = "/v1/authorize"


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(None, min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=128, examples=["s3:DeleteBucket"])
    resource: str = Field(max_length=4096, examples=["arn:aws:s3:::dev-scratch"])
    tags: dict[str, str] = Field(default_factory=dict, examples=[{"env": "dev"}])
    attributes: dict[str, Any] = Field(default_factory=dict)
    wait_seconds: float = Field(
        0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="if an approval is needed, wait up to this long for its decision",
    )


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


async def authorize(request: web.Request) -> web.Response:
    await admit_agent(request, "authorize")
    payload = await read_model(request, AuthorizeRequest, request.app[LIMIT_KEY])
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
    app.router.add_post(PATH, authorize)
    set_error_renderer(app, PATH, _denial_body)
