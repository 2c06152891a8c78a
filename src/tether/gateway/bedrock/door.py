"""``/bedrock/model/{id}/…``: Amazon Bedrock's runtime API for Claude, as Claude Code and
the SDKs call it with ``ANTHROPIC_BEDROCK_BASE_URL`` at tether, and boto3 with
``endpoint_url``: InvokeModel (and its stream), Converse (and ConverseStream), CountTokens.

Translates only: the model id from the path, the body (relayed as it is: it carries
``anthropic_version`` and ``anthropic_beta``; a Converse body is read by its dialect) into
the shared ``ModelCall``; the call
re-signed with SigV4 under the project's AWS credential (or the agent's assumed role) in
the project's region; the event stream decoded for the tap and framed again for the agent.
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tether.errors import BadRequest, NotFound, TetherError
from tether.gateway.anthropic.request import parse_messages_request
from tether.gateway.aws.signing import sign_json_call
from tether.gateway.aws.upstream import AwsUpstream
from tether.gateway.bedrock.converse import CONVERSE_DIALECT, parse_converse_request
from tether.gateway.bedrock.converse_stream import ConverseStreamCodec
from tether.gateway.bedrock.errors import bedrock_error_body, bedrock_error_response
from tether.gateway.bedrock.stream import BedrockStreamCodec
from tether.gateway.credentials import admit_agent
from tether.gateway.model.calls import ModelCalls
from tether.gateway.model.wire import ModelCall, StreamCodec, UpstreamTarget
from tether.identity.directory import AgentIdentity
from tether.pricing.model_ids import canonical_model_id
from tether.web.bodies import read_limited
from tether.web.errors import set_error_renderer

__all__ = ["BEDROCK_SOURCE", "BedrockDoor", "BedrockWire", "bedrock_call", "bedrock_operation"]

log = logging.getLogger(__name__)

BEDROCK_SOURCE = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
SIGNING_NAME = "bedrock"
_OPERATIONS = {
    "invoke": ("messages", False),
    "invoke-with-response-stream": ("messages", True),
    "count-tokens": ("count_tokens", False),
    "converse": ("messages", False),
    "converse-stream": ("messages", True),
}
_CONVERSE = frozenset({"converse", "converse-stream"})
_FORWARDED = ("content-type", "accept")


def bedrock_operation(suffix: str) -> tuple[str, bool] | None:
    """``invoke`` → (``messages``, not streamed); None for what this door does not serve."""
    return _OPERATIONS.get(suffix)


class BedrockWire:
    """Bedrock's runtime: SigV4 under the project's AWS credential, event-stream frames,
    AWS error JSON."""

    upstream_name = "Amazon Bedrock"

    def __init__(self, aws: AwsUpstream) -> None:
        self._aws = aws

    def refusal(self, code: str, message: str, headers: dict[str, str]) -> web.Response:
        return bedrock_error_response(code, message, headers)

    def codec(self) -> StreamCodec:
        return BedrockStreamCodec()

    def is_stream(self, upstream: aiohttp.ClientResponse) -> bool:
        return upstream.content_type == EVENT_STREAM

    async def target(
        self, request: web.Request, identity: AgentIdentity, call: ModelCall, body: bytes
    ) -> UpstreamTarget:
        project, agent = identity.project, identity.agent
        config = await self._aws.config(project.id, project.name)
        credentials = await self._aws.credentials(project.id, config, agent.name)
        suffix = _suffix(call)
        model_id = _path_segment(call.parsed.model)
        region = call.tags.get("region") or config.region
        url = f"{config.endpoint('bedrock-runtime', region)}/model/{model_id}/{suffix}"
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if (lower := name.lower()) in _FORWARDED or lower.startswith("x-amzn-bedrock-")
        ]
        if suffix == "count-tokens":
            body = orjson.dumps(
                {"input": {"invokeModel": {"body": base64.b64encode(body).decode()}}}
            )
        signed = sign_json_call(url, headers, body, credentials, SIGNING_NAME, region)
        return UpstreamTarget(URL(url, encoded=True), CIMultiDict(signed), body)


class ConverseWire(BedrockWire):
    """Converse and ConverseStream: Bedrock's signing and errors, Converse's event frames."""

    def codec(self) -> StreamCodec:
        return ConverseStreamCodec()


class BedrockDoor:
    def __init__(self, calls: ModelCalls, aws: AwsUpstream, max_body_bytes: int) -> None:
        self._calls = calls
        self._wire = BedrockWire(aws)
        self._converse = ConverseWire(aws)
        self._max_body_bytes = max_body_bytes

    def add_routes(self, app: web.Application) -> None:
        operations = "|".join(_OPERATIONS)
        app.router.add_post(
            rf"/bedrock/model/{{model_id:.+}}/{{operation:{operations}}}", self.handle
        )
        set_error_renderer(app, "/bedrock", bedrock_error_body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            await admit_agent(request, BEDROCK_SOURCE)
            body = await read_limited(request, self._max_body_bytes)
            info = request.match_info
            call = bedrock_call(BEDROCK_SOURCE, info["model_id"], info["operation"], body)
            return await self._calls.handle(request, call, self._wire_for(call))
        except TetherError as exc:
            return bedrock_error_response(exc.code, exc.message)

    async def relay(self, request: web.Request, call: ModelCall) -> web.StreamResponse:
        """A Bedrock call another door understood (the AWS broker's ``bedrock-runtime``)."""
        try:
            return await self._calls.handle(request, call, self._wire_for(call))
        except TetherError as exc:
            return bedrock_error_response(exc.code, exc.message)

    def _wire_for(self, call: ModelCall) -> BedrockWire:
        return self._converse if call.dialect is CONVERSE_DIALECT else self._wire


def bedrock_call(source: str, model_id: str, suffix: str, body: bytes, **fields: Any) -> ModelCall:
    """The model call a Bedrock runtime request makes (``suffix``: ``invoke``, …). A model
    id whose Claude model cannot be read from it (an application inference profile, a
    provisioned, custom or imported model's ARN) is refused: policies and prices go by
    model, and such an id would escape a rule on ``claude-opus*`` and be priced as
    another model."""
    if not canonical_model_id(model_id).startswith("claude-"):
        raise BadRequest(
            f"model {model_id[:200]!r}: tether cannot tell which Claude model this is; call "
            "Bedrock with a Claude model id or a system inference profile "
            "(us.anthropic.claude-…), not an application inference profile or a "
            "provisioned, custom or imported model"
        )
    operation = bedrock_operation(suffix)
    if operation is None:
        raise NotFound(f"Bedrock operation {suffix!r}: tether serves {', '.join(_OPERATIONS)}")
    name, stream = operation
    tags = {"cloud": "aws"} | fields.pop("tags", {})
    if suffix in _CONVERSE:
        parsed = parse_converse_request(body, model_id, stream)
        return ModelCall(source, name, parsed, body, tags, dialect=CONVERSE_DIALECT, **fields)
    if name == "count_tokens":
        body = _counted_body(body)
    parsed = parse_messages_request(
        body, require_max_tokens=name == "messages", model=model_id, stream=stream
    )
    return ModelCall(source, name, parsed, body, tags, **fields)


@lru_cache(maxsize=1024)
def _path_segment(model: str) -> str:
    """The model id as one path segment (the same few ids on every call)."""
    return quote(model, safe="")


def _suffix(call: ModelCall) -> str:
    if call.operation == "count_tokens":
        return "count-tokens"
    if call.dialect is CONVERSE_DIALECT:
        return "converse-stream" if call.parsed.stream else "converse"
    return "invoke-with-response-stream" if call.parsed.stream else "invoke"


def _counted_body(body: bytes) -> bytes:
    """CountTokens wraps an InvokeModel body: ``{"input": {"invokeModel": {"body": b64}}}``."""
    try:
        document = orjson.loads(body)
        inner = document["input"]["invokeModel"]["body"]
        return base64.b64decode(inner, validate=True) if isinstance(inner, str) else b""
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
        raise BadRequest(
            'CountTokens takes {"input": {"invokeModel": {"body": <base64 InvokeModel body>}}}'
        ) from None
