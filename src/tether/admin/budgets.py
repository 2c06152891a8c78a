"""Admin: budgets — set, list with what is spent, reserved and unsettled, delete; list and
settle the reservations a dead process left unsettled."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import BudgetOut, BudgetPut, BudgetSettle, UnsettledOut
from tether.audit.event import AuditEvent
from tether.clock import iso_ms, now_ms
from tether.errors import BadRequest, Conflict
from tether.records.budgets import Budget, BudgetPeriod, BudgetScope, period_window
from tether.runtime import Runtime
from tether.store.budgets import UnsettledHold
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
    unsettled = 0
    if usage is not None:
        holds = await runtime.budget_store.unsettled([budget.id])
        unsettled = sum(h.micros for h in holds if h.period_key == key)
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
        reserved_usd=None if per_session else (reserved - unsettled) / 1_000_000,
        unsettled_usd=None if per_session else unsettled / 1_000_000,
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


async def _unsettled_out(runtime: Runtime, hold: UnsettledHold) -> UnsettledOut:
    budget = runtime.budget_book.find(hold.budget_id)
    project = await runtime.projects.get(budget.project_id) if budget else None
    return UnsettledOut(
        reservation_id=hold.reservation_id,
        budget_id=hold.budget_id,
        project=project.name if project else "",
        period=hold.period_key,
        reserved_usd=hold.micros / 1_000_000,
        reserved_tokens=hold.tokens,
        unsettled_at=iso_ms(hold.unsettled_at),
        charged_usd=hold.charged_micros / 1_000_000 if hold.charged_micros else None,
    )


async def _budget_ids(runtime: Runtime, project_name: str | None) -> list[str] | None:
    if project_name is None:
        return None
    project = await runtime.projects.by_name(project_name)
    return [b.id for b in await runtime.budget_store.all() if b.project_id == project.id]


@routes.route(
    "GET",
    "/reservations/unsettled",
    "budgets.unsettled",
    "Reservations left unsettled by a process that died (?project=): reserved, not spent",
    response=UnsettledOut,
    many=True,
)
async def list_unsettled(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    budget_ids = await _budget_ids(runtime, request.query.get("project"))
    holds = await runtime.budget_store.unsettled(budget_ids)
    return model_list_response([await _unsettled_out(runtime, h) for h in holds])


@routes.route(
    "POST",
    "/reservations/settle",
    "budgets.settle",
    "Settle unsettled reservations: one, or all of a project's, at a cost or as reserved",
    body=BudgetSettle,
    response=UnsettledOut,
    many=True,
)
async def settle_unsettled(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, BudgetSettle, runtime.settings.max_body_bytes)
    if (payload.reservation_id is None) == (not payload.all_unsettled):
        raise BadRequest("give either reservation_id or all_unsettled: true")
    if (payload.usd is None) == (not payload.as_reserved):
        raise BadRequest("give either usd (what the call really cost) or as_reserved: true")
    if payload.all_unsettled and payload.usd not in (None, 0):
        raise BadRequest(
            "with all_unsettled, usd can only be 0 (or use as_reserved); settle a "
            "reservation at its real cost by its reservation_id"
        )
    budget_ids = await _budget_ids(runtime, payload.project) or []
    if payload.reservation_id is not None:
        wanted = [payload.reservation_id]
    else:
        holds = await runtime.budget_store.unsettled(budget_ids)
        wanted = list(dict.fromkeys(h.reservation_id for h in holds))
    micros = None if payload.as_reserved else round((payload.usd or 0) * 1_000_000)
    actor = f"admin:{caller_of(request).name}"
    settled: list[UnsettledHold] = []
    for reservation_id in wanted:
        parts = await runtime.budget_store.settle_unsettled(reservation_id, budget_ids, micros)
        settled += parts
        await runtime.audit.record_many(
            [_settled_event(runtime, part, actor) for part in parts], urgent=False
        )
    return model_list_response([await _unsettled_out(runtime, h) for h in settled])


def _settled_event(runtime: Runtime, part: UnsettledHold, actor: str) -> AuditEvent:
    budget = runtime.budget_book.find(part.budget_id)
    return AuditEvent(
        actor=actor,
        source="admin",
        action="budget:settled",
        resource=f"reservation:{part.reservation_id}",
        result="settled",
        reason="an operator settled a reservation its process left unsettled",
        project_id=budget.project_id if budget else None,
        attributes={
            "budget_id": part.budget_id,
            "period": part.period_key,
            "reserved_usd": part.micros / 1_000_000,
            "charged_usd": part.charged_micros / 1_000_000,
        },
    )
