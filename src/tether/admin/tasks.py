"""Admin: tasks kept by tether (create from a YAML/JSON file, list, show, cancel, resume)
and each project's drift settings."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.filters import scope_from_query
from tether.admin.patches import changes_in
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.task_schemas import (
    CheckpointOut,
    DriftOut,
    DriftUpdate,
    TaskCreate,
    TaskDetailOut,
    TaskOut,
    TaskStateChange,
)
from tether.errors import BadRequest
from tether.runtime import Runtime
from tether.store.tasks import ACTIVE, CANCELLED, NEEDS_ATTENTION, OPEN_STATES, TaskRecord
from tether.tasks.definition import TaskDefinition, parse_definition
from tether.tasks.settings import load_drift_settings
from tether.web.bodies import read_model

STATES = ("active", "needs_attention", "completed", "cancelled")
NOT_NULL = frozenset({"remind", "system_prompt"})


def task_out(runtime: Runtime, task: TaskRecord) -> TaskOut:
    project = runtime.directory.project(task.project_id)
    agent = runtime.directory.agent(task.agent_id) if task.agent_id else None
    return TaskOut.of(task, project.name if project else None, agent.name if agent else None)


@routes.route(
    "POST",
    "/tasks",
    "tasks.create",
    "Create a task from a YAML or JSON task file; 422 names each mistake's line",
    body=TaskCreate,
    response=TaskOut,
)
async def create_task(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, TaskCreate, runtime.settings.max_body_bytes)
    project = await runtime.projects.by_name(payload.project)
    agent_id = None
    if payload.agent is not None:
        agent = await runtime.agents.by_name(payload.agent)
        if agent.project_id != project.id:
            raise BadRequest(f"agent {payload.agent!r} is not in project {payload.project!r}")
        agent_id = agent.id
    definition = parse_definition(payload.source)
    task = await runtime.tasks.create(
        project.id,
        agent_id,
        payload.session,
        definition.name,
        definition.to_json(),
        definition.batch_count,
        f"admin:{caller_of(request).name}",
    )
    return model_response(task_out(runtime, task), status=201)


@routes.route(
    "GET",
    "/tasks",
    "tasks.list",
    "List tasks, newest first (?project=, ?agent=, ?state=)",
    response=TaskOut,
    many=True,
)
async def list_tasks(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    scope = await scope_from_query(runtime, request.query)
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of: {', '.join(STATES)}")
    found = await runtime.tasks.find(scope.project_id, scope.agent_id, state, limit=500)
    return model_list_response([task_out(runtime, t) for t in found])


@routes.route(
    "GET",
    "/tasks/{task_id}",
    "tasks.show",
    "Show a task: its definition, progress and checkpoints (newest first)",
    response=TaskDetailOut,
)
async def show_task(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    task = await runtime.tasks.get(request.match_info["task_id"])
    definition = TaskDefinition.from_json(task.definition)
    batches = await runtime.tasks.batches(task.id)
    verified = [b.number for b in batches if b.state == "verified"]
    checkpoints = await runtime.tasks.checkpoints(task.id)
    return model_response(
        TaskDetailOut(
            **task_out(runtime, task).model_dump(),
            definition=definition.model_dump(exclude_none=True, exclude={"items"}),
            items=len(definition.items),
            batches_verified=len(verified),
            batches_failed=[b.number for b in batches if b.state == "failed"],
            batches_claimed=[b.number for b in batches if b.state == "claimed"],
            items_done=sum(len(definition.batch_items(n)) for n in verified),
            checkpoints=[CheckpointOut.of(c) for c in checkpoints],
        )
    )


async def _change_state(
    request: web.Request, state: str, from_states: tuple[str, ...]
) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, TaskStateChange, runtime.settings.max_body_bytes)
    task = await runtime.tasks.set_state(
        request.match_info["task_id"],
        state,
        f"admin:{caller_of(request).name}",
        payload.reason,
        from_states,
    )
    runtime.task_marks.task_changed(task.id)
    return model_response(task_out(runtime, task))


@routes.route(
    "POST",
    "/tasks/{task_id}/cancel",
    "tasks.cancel",
    "Cancel a task: no batch is handed out and it is no longer injected",
    body=TaskStateChange,
    response=TaskOut,
)
async def cancel_task(request: web.Request) -> web.Response:
    return await _change_state(request, CANCELLED, OPEN_STATES)


@routes.route(
    "POST",
    "/tasks/{task_id}/resume",
    "tasks.resume",
    "Resume a task that needs attention (or was cancelled): failed batches are handed out again",
    body=TaskStateChange,
    response=TaskOut,
)
async def resume_task(request: web.Request) -> web.Response:
    return await _change_state(request, ACTIVE, (NEEDS_ATTENTION, CANCELLED))


@routes.route(
    "GET",
    "/projects/{project}/drift",
    "drift.show",
    "Show a project's drift settings (re-injection, warnings, system-prompt injection)",
    response=DriftOut,
)
async def show_drift(request: web.Request) -> web.Response:
    project = await runtime_of(request).projects.by_name(request.match_info["project"])
    return model_response(DriftOut.of(project.name, load_drift_settings(project.drift)))


@routes.route(
    "PATCH",
    "/projects/{project}/drift",
    "drift.update",
    "Change a project's drift settings; in force on every replica within a second",
    body=DriftUpdate,
    response=DriftOut,
)
async def update_drift(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, DriftUpdate, runtime.settings.max_body_bytes)
    settings = load_drift_settings(project.drift).updated(changes_in(payload, NOT_NULL))
    await runtime.projects.update(project.id, {"drift": settings.to_json()})
    await runtime.directory.project_changed(project.id)
    return model_response(DriftOut.of(project.name, settings))
