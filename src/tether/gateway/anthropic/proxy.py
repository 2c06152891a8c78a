"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Messages API's front door.

Speaks the protocol only: parses the request into a ``ModelCall`` and hands it to the
shared ``ModelCalls`` with this door's wire (the project's Anthropic key, SSE as it is,
Anthropic error bodies).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tether.budgets.batches import BatchReservations
from tether.gateway.anthropic.batch_settlement import BatchSettlement
from tether.gateway.anthropic.batch_sweep import CanceledBatchSweep
from tether.gateway.anthropic.batches import MessageBatches, cancel_upstream
from tether.gateway.anthropic.errors import anthropic_error_body
from tether.gateway.anthropic.files import FilesApi
from tether.gateway.anthropic.models import ModelListing
from tether.gateway.anthropic.request import parse_messages_request
from tether.gateway.anthropic.upstream import AnthropicUpstream
from tether.gateway.anthropic.wire import AnthropicWire
from tether.gateway.credentials import admit_agent
from tether.gateway.model.calls import DEFAULT_KEEPALIVE_SECONDS, ModelCalls, session_id_from
from tether.gateway.model.wire import ModelCall
from tether.identity.directory import Directory
from tether.identity.upstream_keys import UpstreamKeys
from tether.kill.batches import BatchCanceller
from tether.kill.inflight import InflightStreams
from tether.pipeline import Pipeline
from tether.records.fleet import Project
from tether.records.message_batches import BatchRecord
from tether.web.bodies import read_limited
from tether.web.errors import set_error_renderer

__all__ = ["AnthropicGateway", "GatewaySettings", "session_id_from"]


BATCH_ENDED_STATUSES = frozenset({404, 409})
"""Answers to a cancel that mean there is nothing left to cancel (the batch is gone, or
ended): not tried again."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    default_base_url: str
    max_body_bytes: int
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS


class AnthropicGateway:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: AnthropicUpstream,
        keys: UpstreamKeys,
        inflight: InflightStreams,
        settings: GatewaySettings,
        batches: BatchReservations | None = None,
        canceller: BatchCanceller | None = None,
        followers: Directory | None = None,
    ) -> None:
        """``followers``: the directory tether needs to follow batches a kill canceled to
        their end and settle them itself (their agent as the settlement records it)."""
        self._calls = ModelCalls(pipeline, upstream, inflight, settings.keepalive_seconds)
        self._wire = AnthropicWire(keys, settings.default_base_url)
        self._settings = settings
        self._models = ModelListing(pipeline, upstream, self._wire)
        self._files = FilesApi(pipeline, upstream, self._wire)
        self._upstream = upstream
        self._batches = (
            MessageBatches(
                pipeline, upstream, self._wire, batches, settings.max_body_bytes, followers
            )
            if batches is not None
            else None
        )
        self._canceller = canceller
        if canceller is not None:
            canceller.cancel_upstream = self._cancel_batch
        self._sweep = (
            CanceledBatchSweep(
                batches,
                BatchSettlement(pipeline, batches, followers),
                upstream,
                self._wire,
                followers,
            )
            if batches is not None and followers is not None
            else None
        )

    async def _cancel_batch(self, batch: BatchRecord, project: Project) -> bool:
        """For the kill switch: cancel ``batch`` upstream with its project's key; False
        (tried again) when upstream refused for now (429, 529, a 5xx, a key it refused)."""
        base, api_key = await self._wire.upstream_of(project)
        status = await cancel_upstream(self._upstream, base, api_key, batch.id)
        return status < 300 or status in BATCH_ENDED_STATUSES

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        self._models.add_routes(app)
        self._files.add_routes(app)
        if self._batches is not None:
            self._batches.add_routes(app)
        if self._sweep is not None:
            app.cleanup_ctx.append(self._sweep.lifetime)
        if self._canceller is not None:
            app.cleanup_ctx.append(self._canceller.lifetime)
        set_error_renderer(app, "/v1/messages", anthropic_error_body)
        set_error_renderer(app, "/v1/models", anthropic_error_body)
        set_error_renderer(app, "/v1/files", anthropic_error_body)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "messages", require_max_tokens=True)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "count_tokens", require_max_tokens=False)

    async def _handle(
        self, request: web.Request, operation: str, *, require_max_tokens: bool
    ) -> web.StreamResponse:
        await admit_agent(request, "anthropic")
        body = await read_limited(request, self._settings.max_body_bytes)
        parsed = parse_messages_request(body, require_max_tokens=require_max_tokens)
        return await self._calls.handle(
            request, ModelCall("anthropic", operation, parsed, body), self._wire
        )
