"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: translate, decide, forward, settle.

The handler only speaks the protocol: it builds an Action, asks the pipeline, forwards
with the project's credential when allowed, relays the answer as it arrives, and hands
the outcome (usage, tool calls, status) back to the pipeline to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web

from tether.errors import TetherError, status_for
from tether.gateway.anthropic.canary import CANARY_MODEL, canary_answer
from tether.gateway.anthropic.errors import (
    anthropic_error_body,
    anthropic_error_response,
    error_type_for,
    sse_error_event,
)
from tether.gateway.anthropic.request import (
    MessagesRequest,
    parse_messages_request,
    with_max_tokens,
    with_system_block,
)
from tether.gateway.anthropic.stream_tap import HeldToolUse, StreamTap
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
from tether.pipeline.action import CostBasis, Deny
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
CLIENT_CHECK_SECONDS = 0.5
"""While upstream has not answered, how often to look whether the client is still there."""
DRAIN_SECONDS = 30.0
DRAIN_BYTES = 16 * 1024 * 1024
"""After a client leaves mid-stream, upstream goes on generating (and billing): tether
reads on, this long and this much at most, to settle what was really used."""
T = TypeVar("T")


class ClientGone(Exception):
    """The client closed its connection before tether could answer."""


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
        session_id = session_id_from(request.headers)
        decision = await self._pipeline.decide(
            Action(
                source="anthropic",
                credential=presented_credential(request.headers),
                action=f"model:{operation}",
                resource=f"anthropic:model/{parsed.model}",
                session_id=session_id,
                attributes=_attributes(request, parsed),
                fingerprint=body_fingerprint(body),
                cost_basis=CostBasis(
                    model=parsed.model,
                    input_tokens_estimate=len(body) // BYTES_PER_TOKEN_ESTIMATE + 1,
                    max_output_tokens=parsed.max_tokens or 0,
                    stream=parsed.stream,
                    thinking_budget=parsed.thinking_budget,
                )
                if operation == "messages"
                else None,
                tool_results=parsed.tool_results if operation == "messages" else [],
                conversation=parsed.conversation() if session_id is None else None,
            )
        )
        shown_session = session_id or decision.session_id
        session_headers = {"tether-session-id": shown_session} if shown_session else {}
        if not decision.allowed:
            retry_after = decision.evidence.get("retry_after_seconds")
            if retry_after is not None:
                session_headers["retry-after"] = str(retry_after)
            return anthropic_error_response(
                decision.code or "forbidden", decision.reason, session_headers
            )
        cap = decision.output_token_cap
        if cap is not None and parsed.max_tokens is not None and cap < parsed.max_tokens:
            body = with_max_tokens(body, cap)
        if decision.system_addition:
            body = with_system_block(body, decision.system_addition)
        outcome = Outcome(result="ok", status=200, latency_ms=0.0, model=parsed.model)
        try:
            response = await self._forward(
                request, decision, operation, body, outcome, session_headers
            )
        except ClientGone:
            outcome.result, outcome.status = "abandoned", 499
            outcome.detail = "the client left before upstream answered; charged the worst case"
            outcome.usage = _worst_case(decision)
            response = web.Response(status=499)
        finally:
            outcome.latency_ms = (time.perf_counter() - started) * 1000
            await self._pipeline.settle_later(decision, outcome)
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
        if outcome.model == CANARY_MODEL:
            outcome.usage = Usage()
            return canary_answer(session_headers)
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
            upstream = await _while_client_waits(
                request, self._upstream.post(url, request_headers(request.headers, api_key), body)
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
        headers = response_headers(upstream.headers, session_headers.get("tether-session-id"))
        is_stream = upstream.status == 200 and upstream.content_type == "text/event-stream"
        if is_stream:
            return await self._relay_stream(request, upstream, headers, decision, outcome)
        return await self._relay_body(
            request, upstream, headers, decision, operation, outcome, session_headers
        )

    async def _relay_body(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        headers: Any,
        decision: Decision,
        operation: str,
        outcome: Outcome,
        session_headers: dict[str, str],
    ) -> web.StreamResponse:
        try:
            data = await _while_client_waits(request, upstream.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome.result, outcome.status = "error", 502
            outcome.detail = f"the Anthropic API broke off its answer: {exc!r}"
            outcome.usage = _worst_case(decision)
            return anthropic_error_response("upstream_unreachable", outcome.detail, session_headers)
        finally:
            upstream.release()
        if upstream.status >= 400:
            outcome.result = "error"
            outcome.detail = _upstream_error_detail(data)
        elif operation == "messages":
            if not _read_message(data, outcome):
                return _garbage(decision, outcome, session_headers, "its answer is not a message")
            for tool_use in outcome.tool_uses:
                refusal = await self._pipeline.review(decision, tool_use)
                if refusal is not None:
                    _stopped(outcome, refusal)
                    return anthropic_error_response(refusal.code, refusal.reason, session_headers)
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
        """Relays event by event. A tool call is held until the pipeline lets the agent
        have it, output beyond what is covered must be covered first; a refusal ends the
        stream with an error event in its place. A client that leaves does not stop the
        reading: upstream bills what it generates, so tether settles what it really was."""
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
        refusal: Deny | None = None
        client_gone = False
        drained = 0
        drain_until = 0.0
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                for segment in tap.feed(chunk):
                    if refusal is None:
                        refusal = await self._judge(decision, tap, segment)
                    if refusal is not None:
                        break
                    data = segment.raw if isinstance(segment, HeldToolUse) else segment
                    if client_gone:
                        continue
                    try:
                        await response.write(data)
                    except ConnectionError:
                        client_gone, drain_until = True, time.monotonic() + DRAIN_SECONDS
                if refusal is not None:
                    break
                if client_gone:
                    drained += len(chunk)
                    if drained > DRAIN_BYTES or time.monotonic() > drain_until:
                        break
        except ConnectionError:
            client_gone = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            if handle.cut_by is None:
                outcome.result, outcome.detail = "error", f"the upstream stream broke: {exc!r}"
        except asyncio.CancelledError:
            outcome.result, outcome.model = "abandoned", tap.model or outcome.model
            outcome.detail = "tether stopped while the stream ran; charged the worst case"
            outcome.usage = _worst_case(decision, tap.usage)
            upstream.close()
            raise
        finally:
            self._inflight.unregister(token)
            if refusal is not None or (client_gone and not tap.completed):
                upstream.close()
            upstream.release()
        outcome.usage, outcome.tool_uses = tap.usage, tap.tool_uses
        outcome.model = tap.model or outcome.model
        if refusal is not None:
            _stopped(outcome, refusal)
            outcome.usage.output_tokens = tap.output_tokens
            closing = sse_error_event(error_type_for(outcome.status), refusal.reason, refusal.code)
        elif client_gone:
            outcome.result = "abandoned"
            if tap.completed:
                outcome.detail = "the client closed the stream early; upstream's usage settled"
            else:
                outcome.detail = "the client closed the stream early; charged the worst case"
                outcome.usage = _worst_case(decision, tap.usage)
            return response
        elif handle.cut_by is not None and not tap.completed:
            _stopped(outcome, handle.cut_by)
            outcome.usage.output_tokens = tap.output_tokens
            closing = sse_error_event(
                error_type_for(outcome.status), handle.cut_by.reason, handle.cut_by.code
            )
        elif not tap.started:
            outcome.result, outcome.status = "error", 502
            outcome.detail = "the Anthropic API answered 200 with a stream that is not a message"
            outcome.usage = _worst_case(decision)
            closing = sse_error_event("api_error", outcome.detail)
        elif outcome.result == "error" or not tap.completed:
            outcome.result = "error"
            outcome.detail = outcome.detail or tap.error or "the upstream stream ended early"
            outcome.usage.output_tokens = tap.output_tokens
            closing = b"" if tap.error else sse_error_event("api_error", outcome.detail)
        else:
            closing = b""
        with contextlib.suppress(ConnectionError):
            await response.write(tap.rest() if refusal is None else b"")
            if closing:
                await response.write(closing)
            await response.write_eof()
        return response

    async def _judge(
        self, decision: Decision, tap: StreamTap, segment: bytes | HeldToolUse
    ) -> Deny | None:
        """Whether ``segment`` may go on to the agent: a tool call the pipeline refuses,
        or output beyond what the budget covers, may not."""
        covered = decision.output_covered
        if covered is not None and tap.output_tokens > covered:
            refusal = await self._pipeline.cover_output(decision, tap.output_tokens)
            if refusal is not None:
                return refusal
        if isinstance(segment, HeldToolUse):
            return await self._pipeline.review(decision, segment.tool_use)
        return None


async def _while_client_waits(request: web.Request, work: Awaitable[T]) -> T:
    """``work``, given up (cancelled) when the client leaves first: a client that timed out
    must not hold a connection to upstream and a budget reservation for minutes."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=CLIENT_CHECK_SECONDS)
        if done:
            return task.result()
        transport = request.transport
        if transport is None or transport.is_closing():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise ClientGone


def _stopped(outcome: Outcome, refusal: Deny) -> None:
    outcome.result, outcome.status, outcome.detail = "cut", status_for(refusal.code), refusal.reason


def _worst_case(decision: Decision, seen: Usage | None = None) -> Usage:
    """What the call may have cost when upstream's own count is unknown: the input as
    estimated and the whole ``max_tokens``."""
    usage = Usage() if seen is None else seen
    basis = decision.action.cost_basis if decision.action is not None else None
    if basis is not None:
        usage.input_tokens = max(usage.input_tokens, basis.input_tokens_estimate)
        usage.output_tokens = max(usage.output_tokens, basis.max_output_tokens)
    return usage


def _garbage(
    decision: Decision, outcome: Outcome, session_headers: dict[str, str], what: str
) -> web.Response:
    """A 200 that is not a Messages answer is upstream's failure, never a free call."""
    outcome.result, outcome.status = "error", 502
    outcome.detail = f"the Anthropic API answered 200 but {what}"
    outcome.usage = _worst_case(decision)
    return anthropic_error_response("upstream_unreachable", outcome.detail, session_headers)


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


def _read_message(data: bytes, outcome: Outcome) -> bool:
    """Fills ``outcome`` from a Messages answer; False when ``data`` is not one."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(message, dict) or message.get("type") != "message":
        return False
    usage = Usage()
    usage.update(message.get("usage"))
    outcome.usage = usage
    outcome.model = message.get("model") or outcome.model
    for block in message.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            outcome.tool_uses.append(
                ToolUse(str(block.get("id", "")), str(block.get("name", "")), block.get("input"))
            )
    return True


def _upstream_error_detail(data: bytes) -> str:
    try:
        error = orjson.loads(data).get("error", {})
        return f"{error.get('type', 'error')}: {error.get('message', '')}"[:500]
    except (orjson.JSONDecodeError, AttributeError):
        return data[:200].decode(errors="replace")
