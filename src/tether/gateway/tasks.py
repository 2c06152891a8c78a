"""``/v1/tasks``: the agent's own door to its task, with its agent key (the MCP tools call
the same desk). ``{task_id}`` may be ``current``: the task of the session named by
``X-Claude-Code-Session-Id`` / ``X-Tether-Session-Id``, else the agent's newest open task."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from tether.errors import BadRequest
from tether.gateway.anthropic.proxy import session_id_from
from tether.gateway.credentials import presented_credential
from tether.tasks.desk import Checkpoint, Completion, TaskDesk
from tether.web.bodies import read_model

__all__ = ["CheckpointIn", "CompletionIn", "add_task_routes"]

DESK_KEY = web.AppKey("task_desk", TaskDesk)
LIMIT_KEY = web.AppKey("task_body_limit", int)
SOURCE = "tasks_api"
CURRENT = "current"


class CheckpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    done: str = Field(min_length=1, max_length=20_000, description="what is done")
    next: str = Field("", max_length=20_000, description="what comes next")
    decisions: list[str] = Field(default_factory=list, max_length=100)
    notes: str = Field("", max_length=20_000)


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passed: bool = Field(description="whether the batch's verification passed")
    output: str = Field("", max_length=50_000, description="the verification's output")
    results: Any = Field(None, description="what was done to each item")


def _task_id(request: web.Request) -> str | None:
    task_id = request.match_info["task_id"]
    return None if task_id == CURRENT else task_id


async def show(request: web.Request) -> web.Response:
    answer = await request.app[DESK_KEY].get_task(
        presented_credential(request.headers),
        _task_id(request),
        session_id_from(request.headers),
        SOURCE,
    )
    return web.json_response(answer)


async def checkpoint(request: web.Request) -> web.Response:
    body = await read_model(request, CheckpointIn, request.app[LIMIT_KEY])
    answer = await request.app[DESK_KEY].checkpoint(
        presented_credential(request.headers),
        _task_id(request),
        session_id_from(request.headers),
        SOURCE,
        Checkpoint(body.done, body.next, body.decisions, body.notes),
    )
    return web.json_response(answer, status=201)


async def next_batch(request: web.Request) -> web.Response:
    answer = await request.app[DESK_KEY].next_batch(
        presented_credential(request.headers),
        _task_id(request),
        session_id_from(request.headers),
        SOURCE,
    )
    return web.json_response(answer)


async def complete_batch(request: web.Request) -> web.Response:
    body = await read_model(request, CompletionIn, request.app[LIMIT_KEY])
    number = request.match_info["number"]
    if not number.isdigit():
        raise BadRequest(f"batch number {number!r} is not a whole number")
    answer = await request.app[DESK_KEY].complete_batch(
        presented_credential(request.headers),
        _task_id(request),
        session_id_from(request.headers),
        SOURCE,
        Completion(int(number), body.passed, body.output, body.results),
    )
    return web.json_response(answer)


def add_task_routes(app: web.Application, desk: TaskDesk, body_limit: int) -> None:
    app[DESK_KEY] = desk
    app[LIMIT_KEY] = body_limit
    app.router.add_get("/v1/tasks/{task_id}", show)
    app.router.add_post("/v1/tasks/{task_id}/checkpoints", checkpoint)
    app.router.add_post("/v1/tasks/{task_id}/batches/next", next_batch)
    app.router.add_post("/v1/tasks/{task_id}/batches/{number}/complete", complete_batch)
