"""Admin: projects and their upstream credentials."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.budgets import budget_out
from tether.admin.patches import changes_in
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import (
    CredentialOut,
    CredentialPut,
    ProjectCreate,
    ProjectCreated,
    ProjectOut,
    ProjectUpdate,
)
from tether.errors import BadRequest, NotFound
from tether.gateway.aws.upstream import AwsProjectConfig
from tether.records.budgets import DEFAULT_THRESHOLDS, BudgetPeriod, BudgetScope
from tether.web.bodies import read_model

PROVIDERS = frozenset({"anthropic", "aws"})
REQUIRED_SETTINGS = frozenset(
    {"timezone", "deletion_approval", "unknown_command", "approval_ttl_seconds"}
)


@routes.route(
    "POST",
    "/projects",
    "projects.create",
    "Create a project (with the default per-session limit and daily budget unless told not to)",
    body=ProjectCreate,
    response=ProjectCreated,
    status=201,
)
async def create_project(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, ProjectCreate, runtime.settings.max_body_bytes)
    project = await runtime.projects.create(payload.name)
    budgets = []
    if payload.default_budgets:
        by = f"admin:{caller_of(request).name}"
        for period, limit in runtime.settings.default_budgets():
            scope = BudgetScope.SESSION if period is BudgetPeriod.SESSION else BudgetScope.PROJECT
            budget = await runtime.budget_store.put(
                project.id,
                None,
                scope,
                period,
                round(limit * 1_000_000),
                None,
                DEFAULT_THRESHOLDS,
                by,
            )
            budgets.append(await budget_out(runtime, budget))
    return model_response(
        ProjectCreated(**ProjectOut.of(project).model_dump(), budgets=budgets), status=201
    )


@routes.route("GET", "/projects", "projects.list", "List projects", response=ProjectOut, many=True)
async def list_projects(request: web.Request) -> web.Response:
    projects = await runtime_of(request).projects.all()
    return model_list_response([ProjectOut.of(p) for p in projects])


@routes.route("GET", "/projects/{project}", "projects.show", "Show a project", response=ProjectOut)
async def show_project(request: web.Request) -> web.Response:
    project = await runtime_of(request).projects.by_name(request.match_info["project"])
    return model_response(ProjectOut.of(project))


@routes.route(
    "PATCH",
    "/projects/{project}",
    "projects.update",
    "Change a project's settings (upstream base URL, time zone, approvals)",
    body=ProjectUpdate,
    response=ProjectOut,
)
async def update_project(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, ProjectUpdate, runtime.settings.max_body_bytes)
    changes = changes_in(payload, REQUIRED_SETTINGS)
    await runtime.projects.update(project.id, changes)
    await runtime.directory.project_changed(project.id)
    return model_response(ProjectOut.of(await runtime.projects.by_name(project.name)))


def _provider(request: web.Request) -> str:
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        raise BadRequest(
            f"unknown provider {provider!r}; use one of: {', '.join(sorted(PROVIDERS))}"
        )
    return provider


def _aws_settings(secret: str) -> bool:
    try:
        AwsProjectConfig.loads(secret)
    except (ValueError, KeyError, TypeError):
        return False
    return True


@routes.route(
    "PUT",
    "/projects/{project}/credentials/{provider}",
    "credentials.set",
    "Store the project's upstream credential (encrypted; never shown again)",
    body=CredentialPut,
    response=CredentialOut,
)
async def put_credential(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    provider = _provider(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, CredentialPut, runtime.settings.max_body_bytes)
    if provider == "aws" and not _aws_settings(payload.secret):
        raise BadRequest(
            "the aws credential is the broker's settings as JSON (access_key_id, "
            f"secret_access_key, …): use `tether aws set-credentials {project.name}` "
            f"(PUT /projects/{project.name}/aws)"
        )
    info = await runtime.credentials.put(project.id, provider, payload.secret)
    return model_response(CredentialOut.of(info, project.name))


@routes.route(
    "GET",
    "/projects/{project}/credentials",
    "credentials.list",
    "List which upstream credentials the project has (never their values)",
    response=CredentialOut,
    many=True,
)
async def list_credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    infos = await runtime.credentials.of_project(project.id)
    return model_list_response([CredentialOut.of(i, project.name) for i in infos])


@routes.route(
    "DELETE",
    "/projects/{project}/credentials/{provider}",
    "credentials.delete",
    "Delete the project's upstream credential",
)
async def delete_credential(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    provider = _provider(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    if not await runtime.credentials.delete(project.id, provider):
        raise NotFound(f"project {project.name!r} has no {provider} credential")
    return web.Response(status=204)
