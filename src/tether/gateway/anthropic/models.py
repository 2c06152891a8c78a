"""``GET /v1/models`` and ``/v1/models/{id}``: the model list an SDK's ``models.list()`` or
Claude Code's model picker reads, relayed with the project's key and cut to what the
agent's policy lets it call.

The listing is a decision like any other (``model:list``, audited with its completion,
refused when the session is stopped); each listed model is then previewed as the call the
agent would make (``model:messages`` on it), with nothing spent or recorded, so a model
the policy forbids is not offered."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from tether.gateway.anthropic.errors import anthropic_error_response
from tether.gateway.anthropic.upstream import (
    AnthropicUpstream,
    UpstreamFailed,
    request_headers,
    response_headers,
)
from tether.gateway.anthropic.wire import AnthropicWire
from tether.gateway.credentials import admit_agent, presented_credential
from tether.gateway.model.calls import session_id_from
from tether.pipeline import Action, Pipeline
from tether.pipeline.action import Decision, Deny
from tether.pipeline.outcome import Outcome
from tether.web.path_segments import path_segment

__all__ = ["ModelListing"]

SOURCE = "anthropic"
LIST_QUERY = ("limit", "after_id", "before_id")


class ModelListing:
    def __init__(self, pipeline: Pipeline, upstream: AnthropicUpstream, wire: AnthropicWire):
        self._pipeline = pipeline
        self._upstream = upstream
        self._wire = wire

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model_id}", self.get_model)

    def _action(self, request: web.Request, action: str, resource: str) -> Action:
        return Action(
            source=SOURCE,
            credential=presented_credential(request.headers),
            action=action,
            resource=resource,
            session_id=session_id_from(request.headers),
            join_latest_session=True,
        )

    async def _permits(self, request: web.Request, model_id: str) -> Deny | None:
        verdict = await self._pipeline.preview(
            self._action(request, "model:messages", f"anthropic:model/{model_id}")
        )
        return verdict if isinstance(verdict, Deny) else None

    async def _relay(
        self, request: web.Request, resource: str, path: str
    ) -> tuple[int, Any, web.Response | None, dict[str, str]]:
        """Decides ``model:list`` on ``resource``, then reads ``path`` upstream: (status,
        parsed body, a refusal to answer instead, headers to pass on)."""
        await admit_agent(request, SOURCE)
        started = time.perf_counter()
        decision = await self._pipeline.decide(self._action(request, "model:list", resource))
        session = {"tether-session-id": decision.session_id} if decision.session_id else {}
        if not decision.allowed:
            refusal = anthropic_error_response(
                decision.code or "forbidden", decision.reason, session
            )
            return 0, None, refusal, session
        assert decision.context is not None and decision.context.identity is not None
        base, api_key = await self._wire.project_upstream(decision.context.identity)
        query = {k: request.query[k] for k in LIST_QUERY if k in request.query}
        url = f"{base}/v1/{path}" + (f"?{urlencode(query)}" if query else "")
        try:
            upstream = await self._upstream.get(url, request_headers(request.headers, api_key))
        except UpstreamFailed as exc:
            await self._settle(decision, started, 0, exc.message)
            return 0, None, anthropic_error_response(exc.code, exc.message, session), session
        try:
            data = await upstream.read()
        except BaseException:
            await self._settle(decision, started, 0, "the model list's answer was cut off")
            raise
        finally:
            upstream.release()
        headers = dict(response_headers(upstream.headers, decision.session_id))
        headers.pop("Content-Length", None)
        headers.pop("Content-Type", None)
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            message = "the Anthropic API answered its model list with something that is not JSON"
            await self._settle(decision, started, upstream.status, message)
            return (
                0,
                None,
                anthropic_error_response("upstream_unreachable", message, session),
                session,
            )
        await self._settle(decision, started, upstream.status, "")
        return upstream.status, parsed, None, headers

    async def _settle(self, decision: Decision, started: float, status: int, detail: str) -> None:
        """The completion event (``model:list:completed``): what upstream answered."""
        await self._pipeline.settle_later(decision, Outcome.of_read(status, started, detail))

    async def list_models(self, request: web.Request) -> web.Response:
        status, body, refusal, headers = await self._relay(request, "anthropic:models", "models")
        if refusal is not None:
            return refusal
        if status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
            kept = []
            for model in body["data"]:
                model_id = model.get("id") if isinstance(model, dict) else None
                if isinstance(model_id, str) and await self._permits(request, model_id) is None:
                    kept.append(model)
            body["data"] = kept
            body["first_id"] = kept[0]["id"] if kept else None
            body["last_id"] = kept[-1]["id"] if kept else None
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    async def get_model(self, request: web.Request) -> web.Response:
        model_id = path_segment(request, "model_id")
        status, body, refusal, headers = await self._relay(
            request, f"anthropic:model/{model_id}", f"models/{model_id}"
        )
        if refusal is not None:
            return refusal
        if status == 200:
            denied = await self._permits(request, model_id)
            if denied is not None:
                session = {k: v for k, v in headers.items() if k == "tether-session-id"}
                return anthropic_error_response(denied.code, denied.reason, session)
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
