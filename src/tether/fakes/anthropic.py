"""A fake Anthropic Messages API that speaks the real wire protocol.

SSE event sequence, usage fields (cache tokens included), tool_use blocks, error
bodies, 429/529 with ``retry-after``, per-chunk delays and streams that break midway.
Replies are scripted with ``enqueue`` (in-process) or ``POST /_fake/enqueue``; with
nothing queued every request gets the default text reply.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

__all__ = ["FakeAnthropic", "FakeReply"]


@dataclass
class FakeReply:
    """One scripted answer. ``kind`` is ``text``, ``tool_use``, ``error``, ``garbage`` (a
    200 that is not a Messages answer: a broken proxy or a captive portal in the way),
    ``odd_content`` (a JSON message whose ``content`` is not a list, from an upstream that
    is not quite Anthropic's, with its usage) or ``corrupt_frame`` (a ``text`` answer whose
    stream has one unreadable event in place of the delta after ``break_after_chunks``, and
    goes on intact after it: on Bedrock, an event-stream frame broken as ``error_type``
    says, ``prelude_crc``, ``message_crc`` or ``length``; see ``Framing.corrupt``)."""

    kind: str = "text"
    text: str = "Hello from the fake upstream."
    chunks: int = 3
    chunk_delay: float = 0.0
    """Seconds between a stream's deltas; after each pause a stream whose client has hung up
    stops (counted in ``FakeAnthropic.abandoned``), as upstream stops generating."""
    delay: float = 0.0
    """Seconds before any byte of the answer is sent (time to first byte)."""
    tool_name: str = "Bash"
    tool_input: dict[str, Any] = field(default_factory=lambda: {"command": "ls"})
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "scripted error"
    retry_after: int | None = None
    error_headers: dict[str, str] = field(default_factory=dict)
    """More headers on an ``error`` reply, as upstream writes them (``retry-after: 1.5``,
    ``retry-after-ms``)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    """Of ``cache_creation_input_tokens``, how many were written with the 1-hour TTL."""
    cache_read_input_tokens: int = 0
    break_after_chunks: int | None = None
    fill_text: bool = False
    """Repeat ``text`` to about ``output_tokens`` tokens, so a stream carries as much text as
    its usage says was generated (for what is counted as it streams)."""
    hold: threading.Event | None = None
    """A stream waits after its first event until this is set (a turn in flight for as
    long as a test needs: ``FakeAnthropic.holding`` counts the streams waiting)."""


class Framing:
    """How answers are put on the wire: the Messages API's SSE and error bodies. The
    Bedrock and Vertex fakes (``fakes/bedrock.py``, ``fakes/vertex.py``) frame the same
    scripted answers their clouds' way."""

    content_type = "text/event-stream"

    def event(self, name: str, data: dict[str, Any]) -> bytes:
        return _sse(name, data)

    def error(
        self, status: int, error_type: str, message: str, retry_after: int | None = None
    ) -> web.Response:
        return _error(status, error_type, message, retry_after)

    def body_headers(self, usage: dict[str, Any], output_tokens: int) -> dict[str, str]:
        return {"request-id": _request_id()}

    def stop_event(self, usage: dict[str, Any], output_tokens: int) -> dict[str, Any]:
        return {"type": "message_stop"}

    def corrupt(self, event: bytes, how: str) -> bytes:
        """``event`` (as ``event`` framed it) made unreadable, ``how`` a ``corrupt_frame``
        reply's ``error_type``: SSE has no checksum, so its JSON is cut short."""
        return event[: len(event) // 2] + b"\n\n"

    def message(self, message: dict[str, Any], headers: dict[str, str]) -> web.Response:
        """A whole (unstreamed) answer."""
        return web.json_response(message, headers=headers)


MESSAGES = Framing()


FAKE_MODELS: list[dict[str, Any]] = [
    {"type": "model", "id": model_id, "display_name": name, "created_at": created}
    for model_id, name, created in (
        ("claude-opus-5-5", "Claude Opus 5.5", "2026-10-01T00:00:00Z"),
        ("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-01T00:00:00Z"),
        ("claude-haiku-5-5", "Claude Haiku 5.5", "2026-09-01T00:00:00Z"),
        ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-01T00:00:00Z"),
        ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
        ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    )
]
"""What the fake lists at ``/v1/models``, newest first as the real API does."""


@dataclass
class ReceivedRequest:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _split(text: str, parts: int) -> list[str]:
    parts = max(1, min(parts, len(text) or 1))
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeAnthropic:
    def __init__(self, api_key: str = "sk-ant-fake-upstream-key", default: FakeReply | None = None):
        self.api_key = api_key
        self.default = default or FakeReply()
        self.queue: deque[FakeReply] = deque()
        self.received: list[ReceivedRequest] = []
        self.keep_requests = True
        self.abandoned = 0
        self.holding = 0
        """Streams waiting now on their reply's ``hold``."""
        from tether.fakes.batches import FakeBatches
        from tether.fakes.bedrock import FakeBedrock
        from tether.fakes.files import FakeFiles
        from tether.fakes.vertex import FakeVertex

        self.bedrock = FakeBedrock(self)
        self.batches = FakeBatches(self)
        self.files = FakeFiles(self)
        self.vertex = FakeVertex(self)

    async def _client_waits(self, request: web.Request, seconds: float) -> bool:
        """Sleep ``seconds``, as the real API thinks, unless the client leaves first (then
        it stops: the request is counted in ``abandoned``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await asyncio.sleep(min(0.05, end - loop.time()))
            if request.transport is None or request.transport.is_closing():
                self.abandoned += 1
                return False
        return True

    async def _held(self, request: web.Request, hold: threading.Event) -> bool:
        """Wait until ``hold`` is set; False if the client left first (counted in
        ``abandoned``: a stream cut while it was held)."""
        self.holding += 1
        try:
            while not hold.is_set():
                if request.transport is None or request.transport.is_closing():
                    self.abandoned += 1
                    return False
                await asyncio.sleep(0.02)
            return True
        finally:
            self.holding -= 1

    def enqueue(self, *replies: FakeReply) -> None:
        self.queue.extend(replies)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/_fake/enqueue", self._enqueue_over_http)
        app.router.add_get("/v1/models", self._models)
        self.batches.add_routes(app)
        self.files.add_routes(app)
        app.router.add_get("/v1/models/{model_id}", self._model)
        self.bedrock.add_routes(app)
        self.vertex.add_routes(app)
        return app

    def _model_refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``, newest first, paged by ``limit``/``after_id``/``before_id``."""
        refused = self._model_refusal(request)
        if refused is not None:
            return refused
        ids = [m["id"] for m in FAKE_MODELS]
        start, end = 0, len(FAKE_MODELS)
        if "after_id" in request.query and request.query["after_id"] in ids:
            start = ids.index(request.query["after_id"]) + 1
        if "before_id" in request.query and request.query["before_id"] in ids:
            end = ids.index(request.query["before_id"])
        limit = int(request.query.get("limit", "20"))
        page = FAKE_MODELS[start:end][:limit]
        return web.json_response(
            {
                "data": page,
                "has_more": start + len(page) < end,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def _model(self, request: web.Request) -> web.Response:
        refused = self._model_refusal(request)
        if refused is not None:
            return refused
        wanted = request.match_info["model_id"]
        for model in FAKE_MODELS:
            if model["id"] == wanted:
                return web.json_response(model)
        return _error(404, "not_found_error", f"model: {wanted}")

    def _next(self) -> FakeReply:
        return self.queue.popleft() if self.queue else self.default

    async def _admit(
        self, request: web.Request
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return None, _error(400, "invalid_request_error", "request body is not valid JSON")
        self.record(request, body)
        if request.headers.get("x-api-key") != self.api_key:
            return None, _error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return None, _error(
                400, "invalid_request_error", "anthropic-version header is required"
            )
        if not isinstance(body, dict) or "model" not in body:
            return None, _error(400, "invalid_request_error", "model: Field required")
        return body, None

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        assert body is not None
        return web.json_response({"input_tokens": _estimate_input(body)})

    async def _enqueue_over_http(self, request: web.Request) -> web.Response:
        self.enqueue(FakeReply(**await request.json()))
        return web.json_response({"queued": len(self.queue)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        assert body is not None
        return await self.answer(request, body, body["model"], bool(body.get("stream")))

    def record(self, request: web.Request, body: dict[str, Any]) -> None:
        if self.keep_requests:
            self.received.append(
                ReceivedRequest(request.path, request.query_string, dict(request.headers), body)
            )

    async def answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        model: str,
        stream: bool,
        framing: Framing = MESSAGES,
    ) -> web.StreamResponse:
        """The next scripted reply to a Messages request ``body``, framed by ``framing``."""
        if "max_tokens" not in body:
            return framing.error(400, "invalid_request_error", "max_tokens: Field required")
        reply = self._next()
        if reply.delay and not await self._client_waits(request, reply.delay):
            return web.Response(status=499)
        if reply.kind == "error":
            refused = framing.error(
                reply.status, reply.error_type, reply.error_message, reply.retry_after
            )
            refused.headers.update(reply.error_headers)
            return refused
        if reply.kind == "odd_content" and not stream:
            return web.json_response(
                {"id": "msg_odd", "type": "message", "role": "assistant", "model": model,
                 "content": 5, "stop_reason": "end_turn",
                 "usage": {"input_tokens": 1000, "output_tokens": 1000}}
            )  # fmt: skip
        if reply.kind == "garbage":
            if stream:
                return web.Response(
                    body=framing.event("ping", {}), content_type=framing.content_type
                )
            return web.json_response({"status": "ok", "note": "not a message"})
        usage = {
            "input_tokens": reply.input_tokens
            if reply.input_tokens is not None
            else _estimate_input(body),
            "cache_creation_input_tokens": reply.cache_creation_input_tokens,
            "cache_read_input_tokens": reply.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": reply.cache_creation_input_tokens
                - reply.cache_creation_1h_tokens,
                "ephemeral_1h_input_tokens": reply.cache_creation_1h_tokens,
            },
        }
        output_tokens = reply.output_tokens
        if output_tokens is None:
            output_tokens = max(1, len(reply.text) // 4) if reply.kind in _TEXT else 20
        if isinstance(body["max_tokens"], int):
            output_tokens = min(output_tokens, body["max_tokens"])
        if reply.kind in _TEXT and reply.fill_text:
            reply = replace(reply, text=_text_of(reply.text, output_tokens))
        if stream:
            return await self._stream(request, model, reply, usage, output_tokens, framing)
        return framing.message(
            _message(
                model,
                _content(reply),
                {**usage, "output_tokens": output_tokens},
                "tool_use" if reply.kind == "tool_use" else "end_turn",
            ),
            framing.body_headers(usage, output_tokens),
        )

    async def _stream(
        self,
        request: web.Request,
        model: str,
        reply: FakeReply,
        usage: dict[str, Any],
        output_tokens: int,
        framing: Framing,
    ) -> web.StreamResponse:
        event = framing.event
        response = web.StreamResponse(
            headers={
                "Content-Type": framing.content_type,
                "Cache-Control": "no-cache",
                "request-id": _request_id(),
            }
        )
        await response.prepare(request)
        start = _message(model, [], {**usage, "output_tokens": 1}, None)
        await response.write(event("message_start", {"type": "message_start", "message": start}))
        if reply.hold is not None and not await self._held(request, reply.hold):
            return response
        if reply.kind == "tool_use":
            block = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": reply.tool_name,
                "input": {},
            }
            pieces = _split(json.dumps(reply.tool_input), reply.chunks)
            delta_type, delta_key = "input_json_delta", "partial_json"
        else:
            block = {"type": "text", "text": ""}
            pieces = _split(reply.text, reply.chunks)
            delta_type, delta_key = "text_delta", "text"
        await response.write(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )
        await response.write(event("ping", {"type": "ping"}))
        corrupt = reply.kind == "corrupt_frame"
        for n, piece in enumerate(pieces):
            if (
                not corrupt
                and reply.break_after_chunks is not None
                and n >= reply.break_after_chunks
            ):
                await response.write(
                    event(
                        "error",
                        {
                            "type": "error",
                            "error": {"type": "overloaded_error", "message": "Overloaded"},
                        },
                    )
                )
                return response
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
                if request.transport is None or request.transport.is_closing():
                    self.abandoned += 1  # the client hung up: generation stops
                    return response
            delta = event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": delta_type, delta_key: piece},
                },
            )
            if corrupt and n == reply.break_after_chunks:
                delta = framing.corrupt(delta, reply.error_type)
            await response.write(delta)
        await response.write(
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
        )
        await response.write(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "tool_use" if reply.kind == "tool_use" else "end_turn",
                        "stop_sequence": None,
                    },
                    "usage": {**usage, "output_tokens": output_tokens},
                },
            )
        )
        await response.write(event("message_stop", framing.stop_event(usage, output_tokens)))
        await response.write_eof()
        return response


_TEXT = ("text", "corrupt_frame")
"""The kinds answered with text."""


def _estimate_input(body: dict[str, Any]) -> int:
    return max(
        1,
        len(json.dumps(body.get("messages", []))) // 4
        + len(json.dumps(body.get("system", ""))) // 4,
    )


def _text_of(text: str, output_tokens: int) -> str:
    """``text``, repeated or cut to about ``output_tokens`` tokens (4 characters each), so a
    stream carries as much as its usage says it generated."""
    wanted = output_tokens * 4
    if not text:
        return "x" * wanted
    return (text + " ") * (wanted // (len(text) + 1)) + text[: wanted % (len(text) + 1)]


def _content(reply: FakeReply) -> list[dict[str, Any]]:
    if reply.kind == "tool_use":
        return [
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": reply.tool_name,
                "input": reply.tool_input,
            }
        ]
    return [{"type": "text", "text": reply.text}]


def _message(
    model: str, content: list[dict[str, Any]], usage: dict[str, Any], stop_reason: str | None
) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _error(
    status: int, error_type: str, message: str, retry_after: int | None = None
) -> web.Response:
    request_id = _request_id()
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return web.json_response(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        },
        status=status,
        headers=headers,
    )


def main() -> None:
    """``python -m tether.fakes.anthropic --port 9999``: a stand-in for demos and benchmarks."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--api-key", default="sk-ant-fake-upstream-key")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument(
        "--gcp-key-out",
        help="write a service-account key file whose tokens this fake issues (for /vertex)",
    )
    parser.add_argument(
        "--trust-signatures",
        action="store_true",
        help="do not verify Bedrock calls' SigV4 signatures (benchmarks: botocore's check "
        "would make the fake the bottleneck)",
    )
    args = parser.parse_args()
    fake = FakeAnthropic(args.api_key, FakeReply(chunk_delay=args.chunk_delay))
    fake.keep_requests = False
    fake.bedrock.check_signatures = not args.trust_signatures
    if args.gcp_key_out:
        key = fake.vertex.new_service_account(f"http://{args.host}:{args.port}")
        with open(args.gcp_key_out, "w", encoding="utf-8") as out:
            json.dump(key, out)
    web.run_app(fake.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
