"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: translate, decide, forward, settle.

The handler only speaks the protocol: it builds an Action, asks the pipeline, forwards
with the project's credential when allowed, relays the answer as it arrives, and hands
the outcome (usage, tool calls, status) back to the pipeline to settle.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tether.errors import TetherError
from tether.gateway.anthropic.errors import (
    anthropic_error_body,
    anthropic_error_response,
    error_type_for,
    sse_error_event,
)
from tether.gateway.anthropic.request import MessagesRequest, parse_messages_request
from tether.gateway.anthropic.stream_tap import StreamTap
from tether.gateway.anthropic.upstream import (
    AnthropicUpstream,
    UpstreamFailed,
    request_headers,
    response_headers,
)
from tether.gateway.credentials import admit_agent, presented_credential
from tether.guards.fingerprints import body_fingerprint
from tether.kill.inflight import InflightStreams, StreamHandle
from tether.pipeline import Action, Decision, Outcome, Pipeline, ToolUse
from tether.pipeline.action import CostBasis
from tether.pricing.usage import Usage
from tether.vault.upstream_keys import UpstreamKeys
from tether.web.bodies import read_limited
from tether.web.errors import set_error_renderer

__all__ = ["AnthropicGateway", "GatewaySettings", "session_id_from"]

BYTES_PER_TOKEN_ESTIMATE = 4
"""A request body's bytes per input token, for the worst-case budget reservation: JSON
framing makes real requests lighter than this, so the estimate errs high."""
SESSION_HEADERS = ("X-Claude-Code-Session-Id", "X-Tether-Session-Id")
PROVIDER = "anthropic"
OVERLOADED = frozenset({429, 529})
MAX_RETRY_AFTER_SECONDS = 600


def session_id_from(headers: Any) -> str | None:
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return str(value)[:128]
    return None


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    default_base_url: str
    max_body_bytes: int


class AnthropicGateway:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: AnthropicUpstream,
        keys: UpstreamKeys,
        inflight: InflightStreams,
        settings: GatewaySettings,
    ) -> None:
        self._pipeline = pipeline
        self._upstream = upstream
        self._keys = keys
        self._inflight = inflight
        self._settings = settings

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        set_error_renderer(app, "/v1/messages", anthropic_error_body)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "messages", require_max_tokens=True)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "count_tokens", require_max_tokens=False)

    async def _handle(
        self, request: web.Request, operation: str, *, require_max_tokens: bool
    ) -> web.StreamResponse:
        await admit_agent(request, "anthropic")
        started = time.perf_counter()
        body = await read_limited(request, self._settings.max_body_bytes)
        parsed = parse_messages_request(body, require_max_tokens=require_max_tokens)
        decision = await self._pipeline.decide(
            Action(
                source="anthropic",
                credential=presented_credential(request.headers),
                action=f"model:{operation}",
                resource=f"anthropic:model/{parsed.model}",
                session_id=session_id_from(request.headers),
                attributes=_attributes(request, parsed),
                fingerprint=body_fingerprint(body),
                cost_basis=CostBasis(
                    model=parsed.model,
                    input_tokens_estimate=len(body) // BYTES_PER_TOKEN_ESTIMATE + 1,
                    max_output_tokens=parsed.max_tokens or 0,
                )
                if operation == "messages"
                else None,
            )
        )
        session_headers = {"tether-session-id": decision.session_id} if decision.session_id else {}
        if not decision.allowed:
            retry_after = decision.evidence.get("retry_after_seconds")
            if retry_after is not None:
                session_headers["retry-after"] = str(retry_after)
            return anthropic_error_response(
                decision.code or "forbidden", decision.reason, session_headers
            )
        outcome = Outcome(
            result="ok",
            status=200,
            latency_ms=0.0,
            model=parsed.model,
            tool_results=parsed.tool_results,
        )
        try:
            response = await self._forward(
                request, decision, operation, body, outcome, session_headers
            )
        finally:
            outcome.latency_ms = (time.perf_counter() - started) * 1000
            self._pipeline.settle_soon(decision, outcome)
        return response

    async def _forward(
        self,
        request: web.Request,
        decision: Decision,
        operation: str,
        body: bytes,
        outcome: Outcome,
        session_headers: dict[str, str],
    ) -> web.StreamResponse:
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        project = ctx.identity.project
        api_key: str | None = None
        unreadable: str | None = None
        try:
            api_key = await self._keys.get(project.id, PROVIDER)
        except TetherError as exc:
            unreadable = exc.message
        if api_key is None:
            message = unreadable or (
                f"project {project.name!r} has no Anthropic credential; an operator must run "
                f"'tether credentials set {project.name} --provider anthropic'"
            )
            outcome.result, outcome.status, outcome.detail = "error", 503, message
            return anthropic_error_response("no_upstream_credential", message, session_headers)
        base = (project.upstream_base_url or self._settings.default_base_url).rstrip("/")
        url = f"{base}/v1/{'messages/count_tokens' if operation == 'count_tokens' else 'messages'}"
        if request.query_string:
            url += f"?{request.query_string}"
        outcome.upstream_reached = True
        try:
            upstream = await self._upstream.post(
                url, request_headers(request.headers, api_key), body
            )
        except UpstreamFailed as exc:
            outcome.result, outcome.status, outcome.detail = "error", exc.status, exc.message
            outcome.upstream_overloaded = True
            return anthropic_error_response(exc.code, exc.message, session_headers)
        outcome.status = upstream.status
        if upstream.status in OVERLOADED or upstream.status >= 500:
            outcome.upstream_overloaded = True
            outcome.retry_after_seconds = _retry_after(upstream.headers.get("retry-after"))
        outcome.upstream_request_id = upstream.headers.get("request-id")
        headers = response_headers(upstream.headers, decision.session_id)
        is_stream = upstream.status == 200 and upstream.content_type == "text/event-stream"
        if is_stream:
            return await self._relay_stream(request, upstream, headers, decision, outcome)
        return await self._relay_body(
            request, upstream, headers, operation, outcome, session_headers
        )

    async def _relay_body(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        headers: Any,
        operation: str,
        outcome: Outcome,
        session_headers: dict[str, str],
    ) -> web.StreamResponse:
        try:
            data = await upstream.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome.result, outcome.status = "error", 502
            outcome.detail = f"the Anthropic API broke off its answer: {exc!r}"
            return anthropic_error_response("upstream_unreachable", outcome.detail, session_headers)
        finally:
            upstream.release()
        if upstream.status >= 400:
            outcome.result = "error"
            outcome.detail = _upstream_error_detail(data)
        elif operation == "messages":
            _read_message(data, outcome)
        response = web.Response(body=data, status=upstream.status, headers=headers)
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await response.write_eof()
        return response

    async def _relay_stream(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        headers: Any,
        decision: Decision,
        outcome: Outcome,
    ) -> web.StreamResponse:
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        response = web.StreamResponse(status=upstream.status, headers=headers)
        tap = StreamTap()
        handle = StreamHandle(
            agent_id=ctx.identity.agent.id,
            project_id=ctx.identity.project.id,
            session_id=decision.session_id,
            cut=lambda _verdict: upstream.close(),
        )
        token = self._inflight.register(handle)
        client_gone = False
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                tap.feed(chunk)
                await response.write(chunk)
        except ConnectionError:
            client_gone = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            if handle.cut_by is None:
                outcome.result, outcome.detail = "error", f"the upstream stream broke: {exc!r}"
        finally:
            self._inflight.unregister(token)
            upstream.release()
        outcome.usage, outcome.tool_uses = tap.usage, tap.tool_uses
        outcome.model = tap.model or outcome.model
        if client_gone:
            outcome.result, outcome.detail = "abandoned", "the client closed the stream early"
            return response
        if handle.cut_by is not None and not tap.completed:
            outcome.result, outcome.status, outcome.detail = "cut", 403, handle.cut_by.reason
            closing = sse_error_event(error_type_for(403), handle.cut_by.reason)
        elif outcome.result == "error" or not tap.completed:
            outcome.result = "error"
            outcome.detail = outcome.detail or tap.error or "the upstream stream ended early"
            closing = b"" if tap.error else sse_error_event("api_error", outcome.detail)
        else:
            closing = b""
        with contextlib.suppress(ConnectionError):
            if closing:
                await response.write(closing)
            await response.write_eof()
        return response


def _attributes(request: web.Request, parsed: MessagesRequest) -> dict[str, Any]:
    attributes: dict[str, Any] = {"model": parsed.model, "stream": parsed.stream}
    if parsed.max_tokens is not None:
        attributes["max_tokens"] = parsed.max_tokens
    retry = request.headers.get("X-Stainless-Retry-Count")
    if retry and retry.isdigit():
        attributes["retry_count"] = int(retry)
    return attributes


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds <= MAX_RETRY_AFTER_SECONDS else None


def _read_message(data: bytes, outcome: Outcome) -> None:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(message, dict):
        return
    usage = Usage()
    usage.update(message.get("usage"))
    outcome.usage = usage
    outcome.model = message.get("model") or outcome.model
    for block in message.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            outcome.tool_uses.append(
                ToolUse(str(block.get("id", "")), str(block.get("name", "")), block.get("input"))
            )


def _upstream_error_detail(data: bytes) -> str:
    try:
        error = orjson.loads(data).get("error", {})
        return f"{error.get('type', 'error')}: {error.get('message', '')}"[:500]
    except (orjson.JSONDecodeError, AttributeError):
        return data[:200].decode(errors="replace")
