"""``/v1/messages/batches``: the Message Batches API through tether.

Every request of a batch is checked as the call it is (``model:messages`` on its model,
previewed, so one forbidden model refuses the whole batch); the batch is then decided
once, reserving each request's worst case, recorded with every request in the trail,
relayed with the project's key and remembered with its agent, session and reservation.
Its results are relayed as they are; read through for an ended batch, they settle the
reservation to what upstream reports each request used (once). Every read (list,
retrieve, cancel, delete, results) is a ``model:batches`` decision settled with what
upstream answered."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web

from tether.budgets.batches import BatchReservations
from tether.errors import BadRequest, TetherError
from tether.gateway.anthropic.batch_settlement import BatchSettlement, BatchTally
from tether.gateway.anthropic.errors import anthropic_error_response
from tether.gateway.anthropic.request import parse_messages_request
from tether.gateway.anthropic.upstream import (
    AnthropicUpstream,
    UpstreamFailed,
    request_headers,
    response_headers,
)
from tether.gateway.anthropic.wire import ANTHROPIC_VERSION, AnthropicWire
from tether.gateway.credentials import admit_agent, presented_credential
from tether.gateway.model.calls import BYTES_PER_TOKEN_ESTIMATE, session_id_from
from tether.identity.directory import Directory
from tether.pipeline import Action, Decision, Outcome, Pipeline
from tether.pipeline.action import CostBasis, Deny, Pending
from tether.pricing.model_ids import canonical_model_id
from tether.pricing.usage import Usage
from tether.web.bodies import read_limited
from tether.web.path_segments import path_segment

__all__ = ["MessageBatches", "cancel_upstream"]

log = logging.getLogger(__name__)

SOURCE = "anthropic"
LIST_QUERY = ("limit", "after_id", "before_id")
MAX_REQUESTS = 100_000


class MessageBatches:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: AnthropicUpstream,
        wire: AnthropicWire,
        reservations: BatchReservations,
        max_body_bytes: int,
        directory: Directory | None = None,
    ) -> None:
        """``directory``: to charge a batch to its own agent when another reads it."""
        self._pipeline = pipeline
        self._upstream = upstream
        self._wire = wire
        self._reservations = reservations
        self._settlement = BatchSettlement(pipeline, reservations, directory)
        self._max_body_bytes = max_body_bytes

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self.create)
        app.router.add_get("/v1/messages/batches", self.list_batches)
        app.router.add_get("/v1/messages/batches/{batch_id}", self.retrieve)
        app.router.add_delete("/v1/messages/batches/{batch_id}", self.delete)
        app.router.add_post("/v1/messages/batches/{batch_id}/cancel", self.cancel)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self.results)

    def _action(self, request: web.Request, resource: str, session_id: str | None = None) -> Action:
        return Action(
            source=SOURCE,
            credential=presented_credential(request.headers),
            action="model:batches",
            resource=resource,
            session_id=session_id or session_id_from(request.headers),
            join_latest_session=True,
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        await admit_agent(request, SOURCE)
        body = await read_limited(request, self._max_body_bytes)
        parts = _parts(request, body)
        for part in parts:
            verdict = await self._pipeline.preview(part)
            if isinstance(verdict, Deny):
                # decided (and so recorded) as the call it is, without a budget hold
                part.cost_basis = None
                decision = await self._pipeline.decide(part)
                if not decision.allowed:
                    return _refusal(decision)
                return anthropic_error_response(verdict.code, verdict.reason, {})
            if isinstance(verdict, Pending):
                refused = await self._approved(part)
                if refused is not None:
                    return refused
        models = sorted({p.cost_basis.model for p in parts if p.cost_basis is not None})
        first = parts[0]
        batch = Action(
            source=SOURCE,
            credential=first.credential,
            action="model:messages",
            resource=first.resource,
            session_id=first.session_id,
            attributes={"batch": True, "requests": len(parts), "models": models},
            cost_basis=CostBasis(
                model=models[0],
                input_tokens_estimate=sum(
                    p.cost_basis.input_tokens_estimate + p.cost_basis.max_output_tokens
                    for p in parts
                    if p.cost_basis is not None
                ),
                max_output_tokens=0,
                parts=tuple(p.cost_basis for p in parts if p.cost_basis is not None),
            ),
            join_latest_session=True,
        )
        decision = await self._pipeline.decide(batch)
        if not decision.allowed:
            return _refusal(decision)
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        session = _session_headers(decision)
        nothing = Outcome(result="error", status=0, latency_ms=0.0, usage=Usage())
        try:
            for part in parts:
                part.session_id = decision.session_id
            await self._pipeline.record_parts(decision, parts)
            base, api_key = await self._wire.project_upstream(ctx.identity)
            upstream = await self._upstream.post(
                f"{base}/v1/messages/batches", request_headers(request.headers, api_key), body
            )
        except UpstreamFailed as exc:
            await self._pipeline.settle(decision, _failed(nothing, exc.message))
            return anthropic_error_response(exc.code, exc.message, session)
        except BaseException:
            await self._pipeline.settle(decision, _failed(nothing, "the batch was not sent"))
            raise
        try:
            data = await upstream.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            detail = f"the Anthropic API's answer to the batch broke off: {exc!r}"
            await self._pipeline.settle(decision, _failed(nothing, detail))
            return anthropic_error_response("upstream_unreachable", detail, session)
        finally:
            upstream.release()
        if upstream.status != 200:
            await self._pipeline.settle(decision, _failed(nothing, f"upstream {upstream.status}"))
            headers = response_headers(upstream.headers, decision.session_id)
            return web.Response(body=data, status=upstream.status, headers=headers)
        created = _created_batch(data)
        if created is None:
            detail = "the Anthropic API answered 200 with a body that is not a message batch"
            await self._pipeline.settle(decision, _failed(nothing, detail))
            return anthropic_error_response("upstream_unreachable", detail, session)
        try:
            await self._reservations.keep(
                created["id"],
                ctx.identity.project.id,
                ctx.identity.agent.id,
                decision.session_id,
                ctx.reservation,
                [p.cost_basis.model if p.cost_basis else "" for p in parts],
            )
        except TetherError:
            await self._withdraw(base, api_key, created["id"])
            await self._pipeline.settle(decision, _failed(nothing, "the batch was not recorded"))
            raise
        return _json_response(request, created, upstream, decision.session_id)

    async def _approved(self, part: Action) -> web.Response | None:
        """A request of the batch that needs an operator's approval is decided as the call
        it is (the batch is decided once, on its first request's model): it asks for the
        approval, or waits for the one asked, or spends the one granted. None once granted;
        else the refusal that names the approval (the batch is sent again once it is)."""
        basis, part.cost_basis = part.cost_basis, None
        decision = await self._pipeline.decide(part)
        part.cost_basis = basis
        if not decision.allowed:
            return _refusal(decision)
        granted = Outcome(
            result="ok",
            status=200,
            latency_ms=0.0,
            usage=Usage(),
            detail="approved; sent in a message batch, charged with the batch",
        )
        await self._pipeline.settle(decision, granted)
        return None

    async def _withdraw(self, base: str, api_key: str, batch_id: str) -> None:
        """Cancel upstream a batch tether could not record: unrecorded, nothing would
        charge it, settle it, or cancel it on a kill (fail closed)."""
        try:
            await cancel_upstream(self._upstream, base, api_key, batch_id)
        except UpstreamFailed as exc:
            log.error("message batch %s was not recorded nor canceled: %s", batch_id, exc)
            return
        log.warning("message batch %s was not recorded; canceled upstream", batch_id)

    async def _read(
        self, request: web.Request, method: str, path: str, batch_id: str | None, started: float
    ) -> tuple[Decision | None, Any, web.Response | None]:
        """Decides ``model:batches`` on the batch, then relays ``path``: (decision, the
        upstream answer, a refusal to give instead)."""
        await admit_agent(request, SOURCE)
        record = await self._reservations.find(batch_id) if batch_id else None
        resource = f"anthropic:batch/{batch_id}" if batch_id else "anthropic:batches"
        decision = await self._pipeline.decide(
            self._action(request, resource, record.session_id if record else None)
        )
        if not decision.allowed:
            return None, None, _refusal(decision)
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        if record is not None and record.project_id != ctx.identity.project.id:
            message = f"message batch {batch_id} is not one of this project's"
            return None, None, anthropic_error_response("not_found", message, {})
        base, api_key = await self._wire.project_upstream(ctx.identity)
        query = {k: request.query[k] for k in LIST_QUERY if k in request.query}
        url = f"{base}/v1/{path}" + (f"?{urlencode(query)}" if query else "")
        headers = request_headers(request.headers, api_key)
        try:
            if method == "GET":
                upstream = await self._upstream.get(url, headers)
            elif method == "POST":
                upstream = await self._upstream.post(url, headers, b"")
            else:
                upstream = await self._upstream.delete(url, headers)
        except UpstreamFailed as exc:
            await self._settle_read(decision, started, 0, exc.message)
            return None, None, anthropic_error_response(exc.code, exc.message, {})
        return decision, upstream, None

    async def _settle_read(
        self, decision: Decision, started: float, status: int, detail: str
    ) -> None:
        """A read's completion event: what upstream answered (nothing is charged)."""
        await self._pipeline.settle_later(decision, Outcome.of_read(status, started, detail))

    async def _relay_json(
        self, request: web.Request, method: str, path: str, batch_id: str | None
    ) -> web.StreamResponse:
        started = time.perf_counter()
        decision, upstream, refusal = await self._read(request, method, path, batch_id, started)
        if refusal is not None:
            return refusal
        assert decision is not None
        session = _session_headers(decision)
        try:
            data = await upstream.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            detail = f"the Anthropic API's answer broke off: {exc!r}"
            await self._settle_read(decision, started, 0, detail)
            return anthropic_error_response("upstream_unreachable", detail, session)
        finally:
            upstream.release()
        if upstream.status != 200:
            await self._settle_read(
                decision, started, upstream.status, f"upstream {upstream.status}"
            )
            headers = response_headers(upstream.headers, decision.session_id)
            return web.Response(body=data, status=upstream.status, headers=headers)
        parsed = _json_object(data)
        if parsed is None:
            detail = "the Anthropic API answered 200 with a body that is not a JSON object"
            await self._settle_read(decision, started, 502, detail)
            return anthropic_error_response("upstream_unreachable", detail, session)
        await self._settle_read(decision, started, upstream.status, "")
        return _json_response(request, parsed, upstream, decision.session_id)

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        batch_id = path_segment(request, "batch_id")
        return await self._relay_json(request, "GET", f"messages/batches/{batch_id}", batch_id)

    async def list_batches(self, request: web.Request) -> web.StreamResponse:
        return await self._relay_json(request, "GET", "messages/batches", None)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        batch_id = path_segment(request, "batch_id")
        return await self._relay_json(
            request, "POST", f"messages/batches/{batch_id}/cancel", batch_id
        )

    async def delete(self, request: web.Request) -> web.StreamResponse:
        batch_id = path_segment(request, "batch_id")
        return await self._relay_json(request, "DELETE", f"messages/batches/{batch_id}", batch_id)

    async def results(self, request: web.Request) -> web.StreamResponse:
        """Relays the JSONL as it comes; read through, it settles the batch's reservation
        to the usage of its succeeded requests (a batch has results only once ended)."""
        batch_id = path_segment(request, "batch_id")
        started = time.perf_counter()
        decision, upstream, refusal = await self._read(
            request, "GET", f"messages/batches/{batch_id}/results", batch_id, started
        )
        if refusal is not None:
            return refusal
        assert decision is not None
        headers = response_headers(upstream.headers, decision.session_id)
        response = web.StreamResponse(status=upstream.status, headers=headers)
        tally = BatchTally()
        completed = False
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                tally.feed_bytes(chunk)
                await response.write(chunk)
            tally.end()
            completed = upstream.status == 200
        except BaseException:
            await self._settle_read(decision, started, 0, "the results' relay broke off")
            raise
        finally:
            upstream.release()
        settled_on = (
            await self._settlement.settle(batch_id, decision, tally, "read by the agent")
            if completed
            else None
        )
        if settled_on is not decision:
            detail = "results read" if completed else f"upstream {upstream.status}"
            await self._settle_read(decision, started, upstream.status, detail)
        await response.write_eof()
        return response


def _parts(request: web.Request, body: bytes) -> list[Action]:
    """Each request of the batch as the Messages call it is."""
    document = _json(body)
    requests = document.get("requests")
    if not isinstance(requests, list) or not requests:
        raise BadRequest("requests: a non-empty list of {custom_id, params} is required")
    if len(requests) > MAX_REQUESTS:
        raise BadRequest(f"requests: at most {MAX_REQUESTS} requests in a batch")
    credential = presented_credential(request.headers)
    session_id = session_id_from(request.headers)
    parts = []
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            raise BadRequest(f"requests[{index}]: an object with custom_id and params is needed")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise BadRequest(f"requests[{index}].custom_id: a non-empty string is required")
        raw = orjson.dumps(item["params"])
        try:
            parsed = parse_messages_request(raw, require_max_tokens=True)
        except BadRequest as exc:
            raise BadRequest(f"requests[{index}].params: {exc.message}") from None
        model = canonical_model_id(parsed.model)
        parts.append(
            Action(
                source=SOURCE,
                credential=credential,
                action="model:messages",
                resource=f"anthropic:model/{model}",
                session_id=session_id,
                attributes={
                    "model": parsed.model,
                    "max_tokens": parsed.max_tokens,
                    "custom_id": custom_id[:64],
                    "batch": True,
                },
                cost_basis=CostBasis(
                    model=model,
                    input_tokens_estimate=len(raw) // BYTES_PER_TOKEN_ESTIMATE + 1,
                    max_output_tokens=parsed.max_tokens or 0,
                    thinking_budget=parsed.thinking_budget,
                ),
                join_latest_session=True,
            )
        )
    return parts


async def cancel_upstream(
    upstream: AnthropicUpstream, base: str, api_key: str, batch_id: str
) -> int:
    """Ask upstream to cancel ``batch_id``; its answer's status."""
    headers = request_headers({"anthropic-version": ANTHROPIC_VERSION}, api_key)
    answer = await upstream.post(f"{base}/v1/messages/batches/{batch_id}/cancel", headers, b"")
    answer.release()
    return answer.status


def _created_batch(data: bytes) -> dict[str, Any] | None:
    """Upstream's new batch, or None when its 200 is not one (a proxy's page, say)."""
    created = _json_object(data)
    if created is None or not isinstance(created.get("id"), str):
        return None
    return created


def _json_object(data: bytes) -> dict[str, Any] | None:
    """Upstream's answer as a JSON object, or None when it is not one."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _json(data: bytes) -> Any:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the body must be a JSON object")
    return parsed


def _failed(outcome: Outcome, detail: str) -> Outcome:
    outcome.detail = detail
    return outcome


def _session_headers(decision: Decision) -> dict[str, str]:
    return {"tether-session-id": decision.session_id} if decision.session_id else {}


def _refusal(decision: Decision) -> web.Response:
    headers = _session_headers(decision)
    return anthropic_error_response(decision.code or "forbidden", decision.reason, headers)


def _json_response(
    request: web.Request, body: dict[str, Any], upstream: Any, session_id: str | None
) -> web.Response:
    """Points each batch's ``results_url`` at tether (the SDK reads results from it)."""
    origin = f"{request.scheme}://{request.host}"
    for batch in body.get("data", [body]) if "data" in body else [body]:
        if isinstance(batch, dict) and batch.get("results_url"):
            batch["results_url"] = f"{origin}/v1/messages/batches/{batch['id']}/results"
    headers = response_headers(upstream.headers, session_id)
    headers.pop("Content-Length", None)
    headers.pop("Content-Type", None)
    return web.json_response(
        body, status=upstream.status, headers=headers, dumps=lambda v: orjson.dumps(v).decode()
    )
