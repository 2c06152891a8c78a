"""One model call, whatever door it came through: decide, forward, relay, settle.

A door parses its protocol into a ``ModelCall`` and hands it here with its ``ModelWire``.
This builds the action, asks the pipeline, forwards with tether's credential when
allowed, relays the answer as it arrives (tool calls held until judged, output covered
as it streams) and hands the outcome back to the pipeline to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tether.errors import TetherError, status_for
from tether.gateway.anthropic.canary import CANARY_MODEL, canary_answer
from tether.gateway.anthropic.errors import error_type_for, sse_error_event
from tether.gateway.anthropic.stream_tap import HeldToolUse, StreamTap
from tether.gateway.anthropic.upstream import AnthropicUpstream, UpstreamFailed, response_headers
from tether.gateway.credentials import presented_credential
from tether.gateway.model.client_watch import ClientGone, ClientWatch
from tether.gateway.model.keepalive import KeepAlive
from tether.gateway.model.retry_after import retry_after_header
from tether.gateway.model.wire import ModelCall, ModelWire, StreamCodec
from tether.guards.fingerprints import request_fingerprint
from tether.kill.inflight import InflightStreams, StreamHandle
from tether.pipeline import Action, Decision, Outcome, Pipeline, ToolUse
from tether.pipeline.action import CostBasis, Deny
from tether.pricing.model_ids import canonical_model_id
from tether.pricing.usage import Usage

__all__ = ["ModelCalls", "session_id_from"]

BYTES_PER_TOKEN_ESTIMATE = 4
"""A request body's bytes per input token, for the worst-case budget reservation: JSON
framing makes real requests lighter than this, so the estimate errs high."""
SESSION_HEADERS = ("X-Claude-Code-Session-Id", "X-Tether-Session-Id")
OVERLOADED = frozenset({429, 529})
MAX_RETRY_AFTER_SECONDS = 600
DEFAULT_KEEPALIVE_SECONDS = 15.0
DRAIN_SECONDS = 30.0
DRAIN_BYTES = 16 * 1024 * 1024
"""After a client leaves mid-stream, upstream goes on generating (and billing): tether
reads on, this long and this much at most, to settle what was really used."""
MAX_RETRY_COUNT_DIGITS = 6
"""A retry count (``X-Stainless-Retry-Count``) is noted when it is a plain number this
long at most; anything else is ignored, not an error: it only describes the call."""


def session_id_from(headers: Any) -> str | None:
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return str(value)[:128]
    return None


class ModelCalls:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: AnthropicUpstream,
        inflight: InflightStreams,
        keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        """``keepalive_seconds``: a relayed stream quiet this long gets a ping (0: never)."""
        self._pipeline = pipeline
        self._upstream = upstream
        self._inflight = inflight
        self._keepalive_seconds = keepalive_seconds
        self._client_watch = ClientWatch()

    def action(self, request: web.Request, call: ModelCall) -> Action:
        """The pipeline's view of ``call``: the same for every door."""
        parsed, body = call.parsed, call.body
        generates = call.operation == "messages"
        session_id = session_id_from(request.headers)
        model = canonical_model_id(parsed.model)
        attributes: dict[str, Any] = {"model": parsed.model, "stream": parsed.stream}
        if parsed.max_tokens is not None:
            attributes["max_tokens"] = parsed.max_tokens
        retry = request.headers.get("X-Stainless-Retry-Count", "")
        if retry.isascii() and retry.isdigit() and len(retry) <= MAX_RETRY_COUNT_DIGITS:
            attributes["retry_count"] = int(retry)
        attributes.update(call.tags)
        return Action(
            source=call.source,
            credential=call.credential or presented_credential(request.headers),
            action=f"model:{call.operation}",
            resource=f"anthropic:model/{model}",
            session_id=session_id,
            attributes=attributes,
            tags=dict(call.tags),
            fingerprint=request_fingerprint(body),
            cost_basis=CostBasis(
                model=model,
                input_tokens_estimate=len(body) // BYTES_PER_TOKEN_ESTIMATE + 1,
                max_output_tokens=parsed.max_tokens or 0,
                stream=parsed.stream,
                thinking_budget=parsed.thinking_budget,
            )
            if generates
            else None,
            tool_results=parsed.tool_results if generates else [],
            conversation=parsed.conversation() if session_id is None else None,
            join_latest_session=call.join_latest_session,
        )

    async def handle(
        self, request: web.Request, call: ModelCall, wire: ModelWire
    ) -> web.StreamResponse:
        started = time.perf_counter()
        action = self.action(request, call)
        decision = await self._pipeline.decide(action)
        shown_session = action.session_id or decision.session_id
        session_headers = {"tether-session-id": shown_session} if shown_session else {}
        if not decision.allowed:
            retry_after = decision.evidence.get("retry_after_seconds")
            if retry_after is not None:
                session_headers["retry-after"] = retry_after_header(float(retry_after))
            return wire.refusal(decision.code or "forbidden", decision.reason, session_headers)
        body, parsed = call.body, call.parsed
        cap = decision.output_token_cap
        if cap is not None and parsed.max_tokens is not None and cap < parsed.max_tokens:
            body = call.dialect.with_max_tokens(body, cap)
        if decision.system_addition:
            body = call.dialect.with_system_block(body, decision.system_addition)
        outcome = Outcome(
            result="ok", status=200, latency_ms=0.0, model=canonical_model_id(parsed.model)
        )
        try:
            response = await self._forward(
                request, decision, call, wire, body, outcome, session_headers
            )
        except ClientGone:
            outcome.result, outcome.status = "abandoned", 499
            outcome.detail = "the client left before upstream answered; charged as a cut answer"
            _cut(outcome)
            response = web.Response(status=499)
        except Exception:
            if outcome.upstream_reached and outcome.usage is None:
                outcome.result, outcome.status = "error", 502
                outcome.detail = "tether failed while relaying the answer; charged as a cut answer"
                _cut(outcome)
            raise
        finally:
            outcome.latency_ms = (time.perf_counter() - started) * 1000
            await self._pipeline.settle_later(decision, outcome)
        return response

    async def _forward(
        self,
        request: web.Request,
        decision: Decision,
        call: ModelCall,
        wire: ModelWire,
        body: bytes,
        outcome: Outcome,
        session_headers: dict[str, str],
    ) -> web.StreamResponse:
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        if call.source == "anthropic" and outcome.model == CANARY_MODEL:
            outcome.usage = Usage()  # answered here for a drill: nothing to charge
            return canary_answer(session_headers)
        try:
            target = await wire.target(request, ctx.identity, call, body)
        except TetherError as exc:
            outcome.result, outcome.status, outcome.detail = "error", exc.status, exc.message
            return wire.refusal(exc.code, exc.message, session_headers)
        outcome.upstream_reached = True
        try:
            upstream = await self._client_watch.while_client_waits(
                request,
                self._upstream.post(target.url, target.headers, target.body, wire.upstream_name),
            )
        except UpstreamFailed as exc:
            outcome.result, outcome.status, outcome.detail = "error", exc.status, exc.message
            outcome.upstream_overloaded = True
            return wire.refusal(exc.code, exc.message, session_headers)
        outcome.status = upstream.status
        if upstream.status in OVERLOADED or upstream.status >= 500:
            outcome.upstream_overloaded = True
            outcome.retry_after_seconds = _retry_after(upstream.headers.get("retry-after"))
        outcome.upstream_request_id = upstream.headers.get("request-id") or upstream.headers.get(
            "x-amzn-requestid"
        )
        headers = response_headers(upstream.headers, session_headers.get("tether-session-id"))
        if upstream.status == 200 and wire.is_stream(upstream):
            return await self._relay_stream(
                request, upstream, headers, decision, wire.codec(), wire.upstream_name, outcome
            )
        return await self._relay_body(
            request, upstream, headers, decision, call, wire, outcome, session_headers
        )

    async def _relay_body(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        headers: Any,
        decision: Decision,
        call: ModelCall,
        wire: ModelWire,
        outcome: Outcome,
        session_headers: dict[str, str],
    ) -> web.StreamResponse:
        try:
            data = await self._client_watch.while_client_waits(request, upstream.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome.result, outcome.status = "error", 502
            outcome.detail = f"{wire.upstream_name} broke off its answer: {exc!r}"
            _cut(outcome)
            return wire.refusal("upstream_unreachable", outcome.detail, session_headers)
        finally:
            upstream.release()
        if upstream.status >= 400:
            outcome.result = "error"
            outcome.detail = _upstream_error_detail(data)
        elif call.operation == "messages":
            if not _read_message(call.dialect.message(data), outcome):
                outcome.result, outcome.status = "error", 502
                outcome.detail = (
                    f"{wire.upstream_name} answered 200 but its answer is not a message"
                )
                _cut(outcome)
                return wire.refusal("upstream_unreachable", outcome.detail, session_headers)
            for tool_use in outcome.tool_uses:
                refusal = await self._pipeline.review(decision, tool_use)
                if refusal is not None:
                    _stopped(outcome, refusal)
                    return wire.refusal(refusal.code, refusal.reason, session_headers)
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
        codec: StreamCodec,
        upstream_name: str,
        outcome: Outcome,
    ) -> web.StreamResponse:
        """Relays event by event. A tool call is held until the pipeline lets the agent
        have it, output beyond what is covered must be covered first; a refusal ends the
        stream with an error event in its place. A client that leaves does not stop the
        reading: upstream bills what it generates, so tether settles what it really was.
        A stream that cannot be read on (``codec.broken``) does: upstream is closed at once
        and the call charged as a cut answer."""
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        response = web.StreamResponse(status=upstream.status, headers=headers)
        tap = StreamTap(release_pings=bool(codec.keepalive))
        keepalive: KeepAlive | None = None
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
            if codec.keepalive and self._keepalive_seconds > 0:
                keepalive = KeepAlive(response, codec.keepalive, self._keepalive_seconds)
                keepalive.start()
            async for chunk in upstream.content.iter_any():
                for segment in codec.read(tap, chunk):
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
                    if keepalive is not None:
                        keepalive.wrote()
                if refusal is not None:
                    break
                if codec.broken is not None:
                    upstream.close()  # at once: upstream stops generating what cannot be read
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
            outcome.detail = "tether stopped while the stream ran; charged as a cut answer"
            _cut(outcome, tap)
            upstream.close()
            raise
        finally:
            if keepalive is not None:
                await keepalive.stop()
            self._inflight.unregister(token)
            if refusal is not None or (client_gone and not tap.completed):
                upstream.close()
            upstream.release()
        outcome.usage, outcome.tool_uses = tap.usage, tap.tool_uses
        outcome.model = tap.model or outcome.model
        if refusal is not None:
            _stopped(outcome, refusal)
            _cut(outcome, tap)
            closing = sse_error_event(error_type_for(outcome.status), refusal.reason, refusal.code)
        elif codec.broken is not None and not tap.completed:
            outcome.result, outcome.status = "error", 502
            told = f"{upstream_name} sent {codec.broken}"
            outcome.detail = f"{told}; tether closed the stream at once, charged as a cut answer"
            _cut(outcome, tap)
            closing = sse_error_event("api_error", told)
        elif client_gone:
            outcome.result = "abandoned"
            if tap.completed:
                outcome.detail = "the client closed the stream early; upstream's usage settled"
            else:
                outcome.detail = "the client closed the stream early; charged as a cut answer"
                _cut(outcome, tap)
            return response
        elif handle.cut_by is not None and not tap.completed:
            _stopped(outcome, handle.cut_by)
            _cut(outcome, tap)
            closing = sse_error_event(
                error_type_for(outcome.status), handle.cut_by.reason, handle.cut_by.code
            )
        elif not tap.started:
            outcome.result, outcome.status = "error", 502
            outcome.detail = f"{upstream_name} answered 200 with a stream that is not a message"
            _cut(outcome)
            closing = sse_error_event("api_error", outcome.detail)
        elif outcome.result == "error" or not tap.completed:
            outcome.result = "error"
            outcome.detail = outcome.detail or tap.error or "the upstream stream ended early"
            _cut(outcome, tap)
            closing = b"" if tap.error else sse_error_event("api_error", outcome.detail)
        else:
            closing = b""
        with contextlib.suppress(ConnectionError):
            await response.write(tap.rest() if refusal is None else b"")
            if closing:
                await response.write(codec.encode(closing))
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


def _stopped(outcome: Outcome, refusal: Deny) -> None:
    outcome.result, outcome.status, outcome.detail = "cut", status_for(refusal.code), refusal.reason


def _cut(outcome: Outcome, tap: StreamTap | None = None) -> None:
    """The answer was cut off before upstream reported its whole usage: what was seen of it
    is kept, and the pipeline charges the rest by the cut-answer rule (``pricing.cut``)."""
    usage = Usage()
    if tap is not None:
        usage = tap.usage
        usage.output_tokens = tap.output_tokens
    outcome.usage, outcome.usage_final = usage, False


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds <= MAX_RETRY_AFTER_SECONDS else None


def _read_message(message: dict[str, Any] | None, outcome: Outcome) -> bool:
    """Fills ``outcome`` from an answer read as a Messages message; False when it is none."""
    if message is None:
        return False
    usage = Usage()
    usage.update(message.get("usage"))
    outcome.usage = usage
    model = message.get("model")
    outcome.model = model if isinstance(model, str) and model else outcome.model
    content = message.get("content")
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") == "tool_use":
            outcome.tool_uses.append(
                ToolUse(str(block.get("id", "")), str(block.get("name", "")), block.get("input"))
            )
    return True


def _upstream_error_detail(data: bytes) -> str:
    try:
        document = orjson.loads(data)
        error = document.get("error", document)
        if isinstance(error, dict) and "type" not in error and "message" in error:
            return f"{error.get('status', 'error')}: {error.get('message', '')}"[:500]
        return f"{error.get('type', 'error')}: {error.get('message', '')}"[:500]
    except (orjson.JSONDecodeError, AttributeError):
        return data[:200].decode(errors="replace")
