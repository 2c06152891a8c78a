"""The Message Batches API of the fake upstream, in its real wire shapes: a batch is
``in_progress`` until ``seconds`` have passed (then ``ended`` when next read), results
are JSONL with each request's usage, cancel ends it with its requests ``canceled``."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tether.fakes.anthropic import FakeAnthropic

__all__ = ["FakeBatches"]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    id: str
    requests: list[dict[str, Any]]
    created: float
    ends: float
    canceled_at: float | None = None
    cancel_ends: float = 0.0
    ended_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class FakeBatches:
    def __init__(self, fake: FakeAnthropic) -> None:
        self._fake = fake
        self.seconds = 0.0
        """How long a batch stays ``in_progress``."""
        self.batches: dict[str, _Batch] = {}
        self.canceled: list[str] = []
        self.output_tokens = 40
        """What each request reports it generated."""
        self.answer_text = "batched answer"
        """Each answer's text (long, for a results line longer than a line reader takes)."""
        self.finished_before_cancel = 0
        """How many of a batch's requests had succeeded when it is canceled (billed)."""
        self.cancel_seconds = 0.0
        """How long a canceled batch stays ``canceling`` before it ends."""
        self.cancels_refused = 0
        """The next this many cancels are refused (``cancel_refusal``), canceling nothing."""
        self.cancel_refusal = (529, "overloaded_error")
        """The status and error type those cancels are answered with."""
        self.proxy_page: int | None = None
        """The next create is answered with this status and an HTML page (a proxy in the
        way), and makes no batch."""
        self.read_proxy_page: int | None = None
        """The same for the next read of a batch or of the list (retrieve, list, cancel,
        delete, results)."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches", self._list)
        app.router.add_get("/v1/messages/batches/{id}", self._retrieve)
        app.router.add_delete("/v1/messages/batches/{id}", self._delete)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._cancel)
        app.router.add_get("/v1/messages/batches/{id}/results", self._results)

    def _refusal(self, request: web.Request) -> web.Response | None:
        return self._fake._model_refusal(request)

    def _read_refusal(self, request: web.Request) -> web.Response | None:
        if self.read_proxy_page is not None:
            status, self.read_proxy_page = self.read_proxy_page, None
            page = "<html><body><h1>Bad gateway</h1></body></html>"
            return web.Response(status=status, text=page, content_type="text/html")
        return self._refusal(request)

    def _found(self, request: web.Request) -> _Batch | web.Response:
        refused = self._read_refusal(request)
        if refused is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _not_found(request.match_info["id"])
        self._advance(batch)
        return batch

    def _advance(self, batch: _Batch) -> None:
        if batch.ended_at is None and batch.canceled_at is None and time.time() >= batch.ends:
            batch.ended_at = time.time()
            self._succeed(batch, batch.requests)

    def _succeed(self, batch: _Batch, requests: list[dict[str, Any]]) -> None:
        for item in requests:
            params = item["params"]
            usage = {
                "input_tokens": max(1, len(json.dumps(params.get("messages", []))) // 4),
                "output_tokens": min(self.output_tokens, int(params["max_tokens"])),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            }
            message = {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": params["model"],
                "content": [{"type": "text", "text": self.answer_text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
            batch.results.append(
                {
                    "custom_id": item["custom_id"],
                    "result": {"type": "succeeded", "message": message},
                }
            )

    @staticmethod
    def _ended(batch: _Batch) -> bool:
        if batch.ended_at is not None:
            return True
        return batch.canceled_at is not None and time.time() >= batch.cancel_ends

    def _shape(self, batch: _Batch) -> dict[str, Any]:
        n = len(batch.requests)
        succeeded = len(batch.results)
        canceled = n - succeeded if batch.canceled_at is not None else 0
        ended = self._ended(batch)
        status = "ended" if ended else "canceling" if batch.canceled_at else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": 0 if ended else n,
                "succeeded": succeeded,
                "errored": 0,
                "canceled": canceled,
                "expired": 0,
            },
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + 86400),
            "ended_at": _iso(batch.ended_at or batch.cancel_ends) if ended else None,
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.canceled_at) if batch.canceled_at else None,
            "results_url": f"https://api.anthropic.com/v1/messages/batches/{batch.id}/results"
            if ended
            else None,
        }

    async def _create(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self._fake.record(request, json.loads(raw or b"{}"))
        refused = self._refusal(request)
        if refused is not None:
            return refused
        if self.proxy_page is not None:
            status, self.proxy_page = self.proxy_page, None
            page = "<html><body><h1>Bad gateway</h1></body></html>"
            return web.Response(status=status, text=page, content_type="text/html")
        body = json.loads(raw)
        now = time.time()
        batch = _Batch(
            f"msgbatch_{uuid.uuid4().hex[:24]}", body["requests"], now, now + self.seconds
        )
        self.batches[batch.id] = batch
        return web.json_response(self._shape(batch))

    async def _list(self, request: web.Request) -> web.Response:
        refused = self._read_refusal(request)
        if refused is not None:
            return refused
        batches = list(reversed(self.batches.values()))
        for batch in batches:
            self._advance(batch)
        limit = int(request.query.get("limit", "20"))
        page = [self._shape(b) for b in batches[:limit]]
        return web.json_response(
            {
                "data": page,
                "has_more": len(batches) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self._found(request)
        return batch if isinstance(batch, web.Response) else web.json_response(self._shape(batch))

    async def _delete(self, request: web.Request) -> web.Response:
        batch = self._found(request)
        if isinstance(batch, web.Response):
            return batch
        del self.batches[batch.id]
        return web.json_response({"id": batch.id, "type": "message_batch_deleted"})

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self._found(request)
        if isinstance(batch, web.Response):
            return batch
        if self.cancels_refused:
            self.cancels_refused -= 1
            status, kind = self.cancel_refusal
            error = {"type": kind, "message": f"cancel refused ({kind})"}
            return web.json_response({"type": "error", "error": error}, status=status)
        if batch.ended_at is None and batch.canceled_at is None:
            batch.canceled_at = time.time()
            batch.cancel_ends = batch.canceled_at + self.cancel_seconds
            self._succeed(batch, batch.requests[: self.finished_before_cancel])
            self.canceled.append(batch.id)
        return web.json_response(self._shape(batch))

    async def _results(self, request: web.Request) -> web.Response:
        batch = self._found(request)
        if isinstance(batch, web.Response):
            return batch
        if not self._ended(batch):
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "batch not ended"},
                },
                status=400,
            )
        lines = list(batch.results)
        done = {r["custom_id"] for r in lines}
        lines += [
            {"custom_id": r["custom_id"], "result": {"type": "canceled"}}
            for r in batch.requests
            if r["custom_id"] not in done
        ]
        body = "".join(json.dumps(line) + "\n" for line in lines)
        return web.Response(body=body.encode(), content_type="application/binary")


def _not_found(batch_id: str) -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": "not_found_error", "message": f"batch {batch_id}"}},
        status=404,
    )
