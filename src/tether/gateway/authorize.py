"""``POST /v1/authorize``: the generic front door, for any agent or tool that can ask first."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from tether.gateway.credentials import presented_credential
from tether.pipeline import Action, Decision, Pipeline
from tether.web.bodies import read_model
from tether.web.errors import set_error_renderer

__all__ = ["AuthorizeRequest", "add_authorize_routes"]

PIPELINE_KEY = web.AppKey("pipeline", Pipeline)
LIMIT_KEY = web.AppKey("authorize_body_limit", int)
PATH = "/v1/authorize"


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(None, min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=128, examples=["s3:DeleteBucket"])
    resource: str = Field(max_length=4096, examples=["arn:aws:s3:::dev-scratch"])
    attributes: dict[str, Any] = Field(default_factory=dict)


def _denial_body(code: str, message: str) -> dict[str, Any]:
    return {"decision": "deny", "error": {"code": code, "message": message}}


def _render(decision: Decision) -> web.Response:
    body: dict[str, Any] = {
        "decision": decision.result,
        "reason": decision.reason,
        "event_id": decision.event_id,
        "session_id": decision.session_id,
        "agent": decision.agent_name,
        "project": decision.project_name,
    }
    if not decision.allowed and decision.code:
        body["error"] = {"code": decision.code, "message": decision.reason}
    return web.json_response(body, status=decision.status)


async def authorize(request: web.Request) -> web.Response:
    payload = await read_model(request, AuthorizeRequest, request.app[LIMIT_KEY])
    action = Action(
        source="authorize",
        credential=presented_credential(request.headers),
        action=payload.action,
        resource=payload.resource,
        session_id=payload.session_id,
        attributes=payload.attributes,
    )
    return _render(await request.app[PIPELINE_KEY].decide(action))


def add_authorize_routes(app: web.Application, pipeline: Pipeline, body_limit: int) -> None:
    app[PIPELINE_KEY] = pipeline
    app[LIMIT_KEY] = body_limit
    app.router.add_post(PATH, authorize)
    set_error_renderer(app, PATH, _denial_body)
