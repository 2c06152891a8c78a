"""The Files API of the fake upstream (beta ``files-api-2025-04-14``), in its wire shapes:
a multipart upload kept in memory, its metadata listed and read, its bytes downloaded,
deleted. Each request's ``anthropic-beta`` header is kept in ``betas``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

if TYPE_CHECKING:
    from tether.fakes.anthropic import FakeAnthropic

__all__ = ["FakeFiles"]


@dataclass
class _File:
    id: str
    filename: str
    mime_type: str
    content: bytes
    created_at: str


class FakeFiles:
    def __init__(self, fake: FakeAnthropic) -> None:
        self._fake = fake
        self.files: dict[str, _File] = {}
        self.betas: list[str | None] = []
        self.uploaded_bytes = 0
        """The body bytes of the last upload as they arrived (tether streams them)."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files", self._list)
        app.router.add_get("/v1/files/{id}", self._retrieve)
        app.router.add_get("/v1/files/{id}/content", self._download)
        app.router.add_delete("/v1/files/{id}", self._delete)

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.betas.append(request.headers.get("anthropic-beta"))
        return self._fake._model_refusal(request)

    def _found(self, request: web.Request) -> _File | web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        found = self.files.get(request.match_info["id"])
        if found is None:
            return web.json_response(
                {
                    "type": "error",
                    "error": {
                        "type": "not_found_error",
                        "message": f"file {request.match_info['id']} not found",
                    },
                },
                status=404,
            )
        return found

    @staticmethod
    def _shape(item: _File) -> dict[str, Any]:
        return {
            "id": item.id,
            "type": "file",
            "filename": item.filename,
            "mime_type": item.mime_type,
            "size_bytes": len(item.content),
            "created_at": item.created_at,
            "downloadable": True,
        }

    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        reader = await request.multipart()
        item: _File | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            content = await part.read(decode=False)
            item = _File(
                f"file_{uuid.uuid4().hex[:24]}",
                part.filename or "upload",
                part.headers.get("Content-Type", "application/octet-stream"),
                bytes(content),
                datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            )
        if item is None:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "file: required"},
                },
                status=400,
            )
        self.uploaded_bytes = request.content_length or 0
        self.files[item.id] = item
        return web.json_response(self._shape(item))

    async def _list(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        items = list(reversed(self.files.values()))
        limit = int(request.query.get("limit", "20"))
        page = [self._shape(f) for f in items[:limit]]
        return web.json_response(
            {
                "data": page,
                "has_more": len(items) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "next_page": None,
            }
        )

    async def _retrieve(self, request: web.Request) -> web.Response:
        found = self._found(request)
        return found if isinstance(found, web.Response) else web.json_response(self._shape(found))

    async def _download(self, request: web.Request) -> web.Response:
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        return web.Response(body=found.content, content_type=found.mime_type)

    async def _delete(self, request: web.Request) -> web.Response:
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        del self.files[found.id]
        return web.json_response({"id": found.id, "type": "file_deleted"})
