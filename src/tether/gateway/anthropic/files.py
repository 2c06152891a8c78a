"""``/v1/files``: the Files API (beta) through tether. Each call is an action decided
by the pipeline on ``anthropic:file/{id}`` (``anthropic:files`` for a listing or an
upload) — identity, session, kill, policy, approvals for a deletion — relayed with the
project's key and ``anthropic-beta`` as the agent sent it, and its outcome audited.
An upload is streamed to upstream as it arrives, never held whole in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tether.errors import PayloadTooLarge
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
from tether.pipeline import Action, Decision, Outcome, Pipeline
from tether.web.path_segments import path_segment

__all__ = ["MAX_FILE_BYTES", "FilesApi"]

SOURCE = "anthropic"
MAX_FILE_BYTES = 500 * 1024 * 1024
"""The Files API's largest file; an upload's multipart envelope may add a little."""
UPLOAD_ENVELOPE_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
UPLOAD, LIST, READ, DOWNLOAD, DELETE = (
    "files:Upload",
    "files:List",
    "files:Read",
    "files:Download",
    "files:Delete",
)


class FilesApi:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: AnthropicUpstream,
        wire: AnthropicWire,
        max_upload_bytes: int = MAX_FILE_BYTES + UPLOAD_ENVELOPE_BYTES,
    ) -> None:
        self._pipeline = pipeline
        self._upstream = upstream
        self._wire = wire
        self._max_upload_bytes = max_upload_bytes

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files", self.list_files)
        app.router.add_get("/v1/files/{file_id}", self.retrieve)
        app.router.add_get("/v1/files/{file_id}/content", self.download)
        app.router.add_delete("/v1/files/{file_id}", self.delete)

    async def _decide(
        self, request: web.Request, action: str, resource: str, attributes: dict[str, Any]
    ) -> tuple[Decision, tuple[str, str] | None]:
        """The decision, and (when allowed) the project's upstream base URL and key."""
        await admit_agent(request, SOURCE)
        decision = await self._pipeline.decide(
            Action(
                source=SOURCE,
                credential=presented_credential(request.headers),
                action=action,
                resource=resource,
                session_id=session_id_from(request.headers),
                attributes=attributes,
                join_latest_session=True,
            )
        )
        if not decision.allowed:
            return decision, None
        ctx = decision.context
        assert ctx is not None and ctx.identity is not None
        return decision, await self._wire.project_upstream(ctx.identity)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        declared = request.content_length
        if declared is not None and declared > self._max_upload_bytes:
            raise PayloadTooLarge(
                f"the upload is {declared} bytes; the Files API takes files up to "
                f"{MAX_FILE_BYTES} bytes"
            )
        attributes = {"content_type": request.content_type, "bytes": declared}
        decision, upstream_of = await self._decide(request, UPLOAD, "anthropic:files", attributes)
        if upstream_of is None:
            return _refusal(decision)
        base, api_key = upstream_of
        headers = request_headers(request.headers, api_key)
        if declared is not None:
            headers["Content-Length"] = str(declared)
        counted = _Counted(request, self._max_upload_bytes)
        try:
            answer = await self._upstream.request(
                "POST", f"{base}/v1/files", headers, counted.chunks()
            )
        except UpstreamFailed as exc:
            if counted.too_large:
                await self._settle(decision, 413, "the upload was over the Files API's limit")
                raise PayloadTooLarge(
                    f"the upload is over the Files API's limit of {MAX_FILE_BYTES} bytes"
                ) from None
            await self._settle(decision, 0, exc.message)
            return anthropic_error_response(exc.code, exc.message, _session(decision))
        return await self._relay_json(request, decision, answer)

    async def list_files(self, request: web.Request) -> web.StreamResponse:
        return await self._simple(request, LIST, "anthropic:files", "GET", "files")

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        file_id = path_segment(request, "file_id")
        return await self._simple(
            request, READ, f"anthropic:file/{file_id}", "GET", f"files/{file_id}"
        )

    async def delete(self, request: web.Request) -> web.StreamResponse:
        file_id = path_segment(request, "file_id")
        return await self._simple(
            request, DELETE, f"anthropic:file/{file_id}", "DELETE", f"files/{file_id}"
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        """The file's bytes, relayed as they come."""
        file_id = path_segment(request, "file_id")
        decision, upstream_of = await self._decide(
            request, DOWNLOAD, f"anthropic:file/{file_id}", {}
        )
        if upstream_of is None:
            return _refusal(decision)
        base, api_key = upstream_of
        url = f"{base}/v1/files/{file_id}/content"
        try:
            answer = await self._upstream.get(url, request_headers(request.headers, api_key))
        except UpstreamFailed as exc:
            await self._settle(decision, 0, exc.message)
            return anthropic_error_response(exc.code, exc.message, _session(decision))
        response = web.StreamResponse(
            status=answer.status, headers=response_headers(answer.headers, decision.session_id)
        )
        sent = 0
        try:
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                sent += len(chunk)
                await response.write(chunk)
        finally:
            answer.release()
            await self._settle(decision, answer.status, f"{sent} bytes relayed")
        await response.write_eof()
        return response

    async def _simple(
        self, request: web.Request, action: str, resource: str, method: str, path: str
    ) -> web.StreamResponse:
        decision, upstream_of = await self._decide(request, action, resource, {})
        if upstream_of is None:
            return _refusal(decision)
        base, api_key = upstream_of
        url = f"{base}/v1/{path}" + (f"?{request.query_string}" if request.query_string else "")
        try:
            answer = await self._upstream.request(
                method, url, request_headers(request.headers, api_key)
            )
        except UpstreamFailed as exc:
            await self._settle(decision, 0, exc.message)
            return anthropic_error_response(exc.code, exc.message, _session(decision))
        return await self._relay_json(request, decision, answer)

    async def _relay_json(
        self, request: web.Request, decision: Decision, answer: aiohttp.ClientResponse
    ) -> web.Response:
        try:
            data = await answer.read()
        finally:
            answer.release()
        await self._settle(decision, answer.status, _what(data, answer.status))
        headers = response_headers(answer.headers, decision.session_id)
        return web.Response(body=data, status=answer.status, headers=headers)

    async def _settle(self, decision: Decision, status: int, detail: str) -> None:
        """The completion event (``files:…:completed``): what upstream answered."""
        result = "ok" if 200 <= status < 300 else "error"
        outcome = Outcome(result=result, status=status, latency_ms=0.0, detail=detail)
        await self._pipeline.settle_later(decision, outcome)


class _Counted:
    """A request body streamed on, refused once it passes ``limit`` bytes."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.size = 0
        self.too_large = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.content.iter_chunked(CHUNK_BYTES):
            self.size += len(chunk)
            if self.size > self._limit:
                self.too_large = True
                raise PayloadTooLarge(f"the upload is over the limit of {self._limit} bytes")
            yield chunk


def _what(data: bytes, status: int) -> str:
    """The file id and name an answer names (never the file's content)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"upstream {status}"
    if not isinstance(body, dict):
        return f"upstream {status}"
    if isinstance(body.get("data"), list):
        return f"{len(body['data'])} files listed"
    if isinstance(body.get("error"), dict):
        return f"upstream {status}: {str(body['error'].get('message', ''))[:200]}"
    name = body.get("filename")
    return f"{body.get('type', 'file')} {body.get('id', '')}" + (f" ({name})" if name else "")


def _session(decision: Decision) -> dict[str, str]:
    return {"tether-session-id": decision.session_id} if decision.session_id else {}


def _refusal(decision: Decision) -> web.Response:
    return anthropic_error_response(
        decision.code or "forbidden", decision.reason, _session(decision)
    )
