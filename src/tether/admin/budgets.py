"""Admin: budgets — set, list with what is spent and reserved, delete."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import BudgetOut, BudgetPut
from tether.budgets.definitions import Budget, BudgetPeriod, BudgetScope, period_window
from tether.errors import BadRequest, Conflict
from tether.runtime import Runtime
from tether.store.clock import iso_ms, now_ms
from tether.web.bodies import read_model


async def budget_out(runtime: Runtime, budget: Budget) -> BudgetOut:
    project = await runtime.projects.get(budget.project_id)
    agent = await runtime.agents.get(budget.agent_id) if budget.agent_id else None
    usage = None
    key = None
    end = None
    if budget.period is not BudgetPeriod.SESSION and project is not None:
        window = period_window(budget.period, project.timezone, "", now_ms())
        key, end = window.key, window.end_ms
        usage = await runtime.budget_store.usage(budget.id, key)
    spent = usage.spent_micros if usage else 0
    reserved = usage.reserved_micros if usage else 0
    per_session = budget.period is BudgetPeriod.SESSION
    return BudgetOut(
        id=budget.id,
        project=project.name if project else budget.project_id,
        agent=agent.name if agent else None,
        scope=budget.scope.value,
        period=budget.period.value,
        limit_usd=budget.limit_micros / 1_000_000 if budget.limit_micros is not None else None,
        limit_tokens=budget.limit_tokens,
        thresholds=list(budget.thresholds),
        current_period=key,
        spent_usd=None if per_session else spent / 1_000_000,
        reserved_usd=None if per_session else reserved / 1_000_000,
        remaining_usd=None
        if per_session or budget.limit_micros is None
        else max(0, budget.limit_micros - spent - reserved) / 1_000_000,
        spent_tokens=None if per_session else (usage.spent_tokens if usage else 0),
        period_end=iso_ms(end),
        updated_by=budget.updated_by,
    )


async def _resolve(request: web.Request) -> tuple[BudgetPut, str, str | None, BudgetScope]:
    runtime = runtime_of(request)
    payload = await read_model(request, BudgetPut, runtime.settings.max_body_bytes)
    project = await runtime.projects.by_name(payload.project)
    agent = await runtime.agents.by_name(payload.agent) if payload.agent else None
    if agent is not None and agent.project_id != project.id:
        raise BadRequest(f"agent {agent.name!r} is not in project {project.name!r}")
    if agent is not None:
        scope = BudgetScope.AGENT
    elif payload.period is BudgetPeriod.SESSION:
        scope = BudgetScope.SESSION
    else:
        scope = BudgetScope.PROJECT
    return payload, project.id, agent.id if agent else None, scope


async def _store(
    request: web.Request,
    payload: BudgetPut,
    project_id: str,
    agent_id: str | None,
    scope: BudgetScope,
) -> web.Response:
    runtime = runtime_of(request)
    budget = await runtime.budget_store.put(
        project_id,
        agent_id,
        scope,
        payload.period,
        round(payload.limit_usd * 1_000_000) if payload.limit_usd is not None else None,
        payload.limit_tokens,
        payload.thresholds,
        f"admin:{caller_of(request).name}",
    )
    return model_response(await budget_out(runtime, budget))


@routes.route(
    "PUT",
    "/budgets",
    "budgets.set",
    "Set a budget (create it, or change the one with the same scope and period)",
    body=BudgetPut,
    response=BudgetOut,
)
async def put_budget(request: web.Request) -> web.Response:
    return await _store(request, *await _resolve(request))


@routes.route(
    "POST",
    "/budgets",
    "budgets.create",
    "Create a budget; 409 if one with the same scope and period exists",
    body=BudgetPut,
    response=BudgetOut,
)
async def create_budget(request: web.Request) -> web.Response:
    payload, project_id, agent_id, scope = await _resolve(request)
    for budget in await runtime_of(request).budget_store.all():
        same = (budget.project_id, budget.agent_id, budget.scope, budget.period)
        if same == (project_id, agent_id, scope, payload.period):
            raise Conflict(
                f"a {payload.period.value} {scope.value} budget already exists here (id "
                f"{budget.id}); change it with PUT /admin/v1/budgets or 'tether budgets set'"
            )
    return await _store(request, payload, project_id, agent_id, scope)


@routes.route(
    "GET",
    "/budgets",
    "budgets.list",
    "Budgets with limit, spent, reserved, remaining and period end (?project=)",
    response=BudgetOut,
    many=True,
)
async def list_budgets(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project_name = request.query.get("project")
    project_id = (await runtime.projects.by_name(project_name)).id if project_name else None
    budgets = [b for b in await runtime.budget_store.all() if project_id in (None, b.project_id)]
    return model_list_response([await budget_out(runtime, b) for b in budgets])


@routes.route("DELETE", "/budgets/{budget_id}", "budgets.delete", "Delete a budget")
async def delete_budget(request: web.Request) -> web.Response:
    await runtime_of(request).budget_store.delete(request.match_info["budget_id"])
    return web.Response(status=204)
