"""Admin: what was spent, by project, agent, session or UTC day."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tether.admin.appkeys import runtime_of
from tether.admin.filters import scope_from_query
from tether.admin.routing import routes
from tether.errors import BadRequest
from tether.runtime import Runtime

GROUPINGS = ("project", "agent", "session", "day")


def _day(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise BadRequest(f"{name}={value!r} is not a day; use YYYY-MM-DD")
    return value


async def _named(runtime: Runtime, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        project_id = row.pop("project_id", None)
        agent_id = row.pop("agent_id", None)
        if project_id is not None:
            project = runtime.directory.project(project_id)
            row["project"] = project.name if project else project_id
        if agent_id is not None:
            agent = runtime.directory.agent(agent_id)
            row["agent"] = agent.name if agent else agent_id
        if "cost_micros" in row:
            row["cost_usd"] = row.pop("cost_micros") / 1_000_000
    return rows


@routes.route(
    "GET",
    "/spend",
    "spend.report",
    "Spend by=project|agent|session|day (?project=, ?agent=, ?since=, ?until= as YYYY-MM-DD)",
    status=200,
)
async def spend_report(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    query = request.query
    by = query.get("by", "project")
    if by not in GROUPINGS:
        raise BadRequest(f"by={by!r}: use one of {', '.join(GROUPINGS)}")
    scope = await scope_from_query(runtime, query)
    if by == "session":
        sessions = await runtime.session_store.find(scope.project_id, scope.agent_id, limit=500)
        rows: list[dict[str, Any]] = [
            {
                "session": s.id,
                "project_id": s.project_id,
                "agent_id": s.agent_id,
                "requests": s.request_count,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "cost_micros": s.cost_micros,
            }
            for s in sorted(sessions, key=lambda s: s.cost_micros, reverse=True)
        ]
    else:
        rows = await runtime.spend.report(
            by,
            project_id=scope.project_id,
            agent_id=scope.agent_id,
            since_day=_day("since", query.get("since")),
            until_day=_day("until", query.get("until")),
        )
    body = orjson.dumps(await _named(runtime, rows))
    return web.Response(body=body, content_type="application/json")
