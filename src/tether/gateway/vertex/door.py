"""``/vertex/v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:…``: Vertex
AI's API for Claude, as Claude Code and the SDKs call it with ``ANTHROPIC_VERTEX_BASE_URL``
at tether.

Translates only: the model from the path, the body (relayed as it is) into the shared
``ModelCall``; the call sent to the region the agent named, in the Google project of the
service account tether holds, with an access token tether minted. Vertex streams the
Messages API's own SSE, so nothing in the stream is translated.
"""

from __future__ import annotations

import re

from aiohttp import web
from multidict import CIMultiDict

from tether.errors import BadRequest, NotFound, TetherError
from tether.gateway.anthropic.request import parse_messages_request
from tether.gateway.credentials import admit_agent
from tether.gateway.model.calls import ModelCalls
from tether.gateway.model.wire import ModelCall, SseWire, UpstreamTarget
from tether.gateway.vertex.errors import vertex_error_body, vertex_error_response
from tether.gateway.vertex.tokens import VertexTokens
from tether.identity.directory import AgentIdentity
from tether.web.bodies import read_limited
from tether.web.errors import set_error_renderer
from tether.web.path_segments import path_segment

__all__ = ["VERTEX_SOURCE", "VertexDoor", "VertexWire"]

VERTEX_SOURCE = "vertex"
ROUTE = (
    "/vertex/{version:v1|v1beta1}/projects/{gcp_project}/locations/{region}"
    "/publishers/anthropic/models/{tail}"
)
_METHODS = {
    "rawPredict": ("messages", False),
    "streamRawPredict": ("messages", True),
    "countTokens": ("count_tokens", False),
}
_REGION = re.compile(r"^[a-z0-9-]{2,40}$")
_FORWARDED = ("content-type", "accept", "anthropic-beta", "anthropic-version")


class VertexWire(SseWire):
    """Vertex AI: the service account's access token, SSE as it is, Google error JSON."""

    upstream_name = "Google Vertex AI"

    def __init__(self, tokens: VertexTokens) -> None:
        self._tokens = tokens

    def refusal(self, code: str, message: str, headers: dict[str, str]) -> web.Response:
        return vertex_error_response(code, message, headers)

    async def target(
        self, request: web.Request, identity: AgentIdentity, call: ModelCall, body: bytes
    ) -> UpstreamTarget:
        project = identity.project
        config = await self._tokens.config(project.id, project.name)
        token = await self._tokens.token(project.id, config)
        info = request.match_info  # checked by ``VertexDoor._call`` before the decision
        region = info["region"]
        url = (
            f"{config.endpoint(region)}/{info['version']}/projects/{config.project_id}"
            f"/locations/{region}/publishers/anthropic/models/{info['tail']}"
        )
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in request.headers.items() if name.lower() in _FORWARDED
        )
        headers["Authorization"] = f"Bearer {token}"
        headers["accept-encoding"] = "identity"
        return UpstreamTarget(url, headers, body)


class VertexDoor:
    def __init__(self, calls: ModelCalls, tokens: VertexTokens, max_body_bytes: int) -> None:
        self._calls = calls
        self._wire = VertexWire(tokens)
        self._max_body_bytes = max_body_bytes

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(ROUTE, self.handle)
        set_error_renderer(app, "/vertex", vertex_error_body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            await admit_agent(request, VERTEX_SOURCE)
            body = await read_limited(request, self._max_body_bytes)
            return await self._calls.handle(request, self._call(request, body), self._wire)
        except TetherError as exc:
            return vertex_error_response(exc.code, exc.message)

    def _call(self, request: web.Request, body: bytes) -> ModelCall:
        path_segment(request, "version")
        model, _, method = path_segment(request, "tail").partition(":")
        region = request.match_info["region"]
        if not _REGION.match(region):
            raise BadRequest(f"locations/{region}: not a Vertex AI region (e.g. us-east5, global)")
        if model == "count-tokens" and method == "rawPredict":
            operation, stream, model = "count_tokens", False, ""
        elif method in _METHODS:
            operation, stream = _METHODS[method]
        else:
            raise NotFound(
                f"models/{model}:{method}: tether's Vertex door serves :rawPredict, "
                ":streamRawPredict and :countTokens"
            )
        parsed = parse_messages_request(
            body,
            require_max_tokens=operation == "messages",
            model=model or None,
            stream=stream if stream else None,
        )
        return ModelCall(VERTEX_SOURCE, operation, parsed, body, {"cloud": "gcp", "region": region})
