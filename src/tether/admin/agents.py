"""Admin: agents, their state (quarantine, release, revoke) and their keys."""

from __future__ import annotations

import logging

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import (
    AgentCreate,
    AgentCreated,
    AgentOut,
    IssuedKeyOut,
    KeyOut,
    RotateKey,
    StateChange,
)
from tether.clock import iso_ms
from tether.errors import Conflict
from tether.records.fleet import Agent, AgentState
from tether.runtime import Runtime
from tether.web.bodies import read_model, read_optional_model

log = logging.getLogger(__name__)


async def _out(runtime: Runtime, agent: Agent) -> AgentOut:
    project = runtime.directory.project(agent.project_id) or await runtime.projects.get(
        agent.project_id
    )
    return AgentOut.of(agent, project.name if project else agent.project_id)


@routes.route(
    "POST",
    "/agents",
    "agents.create",
    "Create an agent in a project; its key is in the response, once",
    body=AgentCreate,
    response=AgentCreated,
    status=201,
)
async def create_agent(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, AgentCreate, runtime.settings.max_body_bytes)
    project = await runtime.projects.by_name(payload.project)
    agent, issued = await runtime.agents.create(payload.name, project.id, payload.description)
    body = AgentCreated(
        agent=AgentOut.of(agent, project.name), key=issued.secret, key_id=issued.key.id
    )
    return model_response(body, status=201)


@routes.route(
    "GET",
    "/agents",
    "agents.list",
    "List agents (optionally ?project=NAME)",
    response=AgentOut,
    many=True,
)
async def list_agents(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project_name = request.query.get("project")
    project_id = (await runtime.projects.by_name(project_name)).id if project_name else None
    agents = await runtime.agents.all(project_id)
    return model_list_response([await _out(runtime, a) for a in agents])


@routes.route("GET", "/agents/{agent}", "agents.show", "Show an agent", response=AgentOut)
async def show_agent(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    return model_response(await _out(runtime, agent))


async def _transition(
    request: web.Request, target: AgentState, allowed_from: set[AgentState]
) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    change = await read_optional_model(request, StateChange, runtime.settings.max_body_bytes)
    if agent.state is AgentState.REVOKED and target is not AgentState.REVOKED:
        raise Conflict(f"agent {agent.name!r} is revoked; revocation is final, create a new agent")
    if agent.state not in allowed_from and agent.state is not target:
        raise Conflict(
            f"agent {agent.name!r} is {agent.state.value}; cannot make it {target.value}"
        )
    await runtime.agents.set_state(
        agent.id, target, f"admin:{caller_of(request).name}", change.reason
    )
    log.info(
        "agent %s %s by admin:%s: %s",
        agent.name,
        target.value,
        caller_of(request).name,
        change.reason or "-",
    )
    updated = await runtime.agents.by_name(agent.name)
    return model_response(await _out(runtime, updated))


@routes.route(
    "POST",
    "/agents/{agent}/stop",
    "agents.stop",
    "Stop an agent: all its sessions, running and new, are refused until it is released",
    body=StateChange,
    optional_body=True,
    response=AgentOut,
)
async def stop_agent(request: web.Request) -> web.Response:
    return await _transition(request, AgentState.STOPPED, {AgentState.ACTIVE})


@routes.route(
    "POST",
    "/agents/{agent}/quarantine",
    "agents.quarantine",
    "Quarantine an agent: every action it attempts is denied",
    body=StateChange,
    optional_body=True,
    response=AgentOut,
)
async def quarantine_agent(request: web.Request) -> web.Response:
    return await _transition(
        request, AgentState.QUARANTINED, {AgentState.ACTIVE, AgentState.STOPPED}
    )


@routes.route(
    "POST",
    "/agents/{agent}/release",
    "agents.release",
    "Release a stopped or quarantined agent",
    body=StateChange,
    optional_body=True,
    response=AgentOut,
)
async def release_agent(request: web.Request) -> web.Response:
    return await _transition(
        request, AgentState.ACTIVE, {AgentState.QUARANTINED, AgentState.STOPPED}
    )


@routes.route(
    "POST",
    "/agents/{agent}/revoke",
    "agents.revoke",
    "Revoke an agent and all its keys, for good",
    body=StateChange,
    optional_body=True,
    response=AgentOut,
)
async def revoke_agent(request: web.Request) -> web.Response:
    return await _transition(
        request,
        AgentState.REVOKED,
        {AgentState.ACTIVE, AgentState.QUARANTINED, AgentState.STOPPED},
    )


@routes.route(
    "POST",
    "/agents/{agent}/keys/rotate",
    "keys.rotate",
    "Issue a new key; current keys keep working for grace_seconds",
    body=RotateKey,
    response=IssuedKeyOut,
    status=201,
    optional_body=True,
)
async def rotate_key(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    if agent.state is AgentState.REVOKED:
        raise Conflict(f"agent {agent.name!r} is revoked; its keys cannot be rotated")
    if request.can_read_body:
        payload = await read_model(request, RotateKey, runtime.settings.max_body_bytes)
    else:
        payload = RotateKey()
    issued, old_keys_end = await runtime.agents.rotate_key(agent.id, payload.grace_seconds * 1000)
    body = IssuedKeyOut(
        agent=agent.name,
        key=issued.secret,
        key_id=issued.key.id,
        prefix=issued.key.prefix,
        previous_keys_expire_at=iso_ms(old_keys_end),
    )
    return model_response(body, status=201)


@routes.route(
    "GET",
    "/agents/{agent}/keys",
    "keys.list",
    "List an agent's keys (prefixes and dates only)",
    response=KeyOut,
    many=True,
)
async def list_keys(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    return model_list_response([KeyOut.of(k) for k in await runtime.agents.keys(agent.id)])
