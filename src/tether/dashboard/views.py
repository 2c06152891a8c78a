"""The dashboard's pages: each gathers what it shows from the admin API and renders it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from tether.dashboard.admin_calls import AdminCaller, AdminCallFailed
from tether.dashboard.charts import ColumnChart, column_chart, stacked_chart
from tether.dashboard.keys import CALLER, LOGINS, PREFIX
from tether.dashboard.logins import COOKIE
from tether.dashboard.render import render
from tether.dashboard.timeline import timeline

__all__ = ["routes"]

routes = web.RouteTableDef()

SESSIONS_SHOWN = 25
RECENT_EVENTS = 10
RECENT_WINDOW = 20_000
AUDIT_PAGE = 100
CHART_DAYS = 14
AUDIT_FILTERS = ("agent", "session", "project", "since", "until", "result", "action")
DECISION_HOURS = 24
DECISION_WINDOW = 100_000
"""The decisions chart counts at most the newest this many events (the count reads each)."""
DECISION_BUCKETS = (60, 300, 900, 3600)
DECISION_COLUMNS = 48
DECISION_RESULTS = (("allow", 2), ("pending", 1), ("deny", 4))
"""The decisions drawn, bottom up, with their colours (``series-N`` in the style sheet)."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours_ago(hours: float) -> str:
    return _iso(datetime.now(UTC) - timedelta(hours=hours))


def _see_other(location: str) -> web.Response:
    """A redirect that can carry a cookie (a raised ``HTTPSeeOther`` is answered as is)."""
    return web.Response(status=303, headers={"Location": location})


async def _showing(request: web.Request, path: str, template: str, name: str) -> web.Response:
    """A page that shows one admin API answer, as ``name``."""
    return render(request, template, {name: await request[CALLER].get(path)})


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", {"refused": False})


@routes.post("/login")
async def log_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = form.get("token")
    made = await request.app[LOGINS].log_in(token if isinstance(token, str) else "")
    if made is None:
        return render(request, "login.html", {"refused": True}, status=401)
    cookie, _login = made
    response = _see_other(f"{PREFIX}/")
    response.set_cookie(
        COOKIE, cookie, path=PREFIX, httponly=True, samesite="Strict", secure=request.secure
    )
    return response


@routes.post("/logout")
async def log_out(request: web.Request) -> web.StreamResponse:
    request.app[LOGINS].log_out(request.cookies.get(COOKIE))
    response = _see_other(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


@routes.get("/")
async def home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(f"{PREFIX}/overview")


async def _head(caller: AdminCaller) -> int:
    """The newest event's number (0 with none)."""
    newest = await caller.get("/audit", {"order": "newest", "limit": "1"})
    return int(newest[0]["seq"]) if newest else 0


async def _start_of_newest(caller: AdminCaller, head: int, count: int) -> datetime | None:
    """When the newest ``count`` events began (None when there are no more than that)."""
    if head <= count:
        return None
    cut = await caller.get("/audit", {"after_seq": str(head - count), "limit": "1"})
    return datetime.fromisoformat(cut[0]["ts"]) if cut else None


async def _recent(caller: AdminCaller, head: int) -> dict[str, str]:
    """The audit query bounds for "recent": the time the newest ``RECENT_WINDOW`` events
    span, so a filter that matches little reads that range of its index, never all."""
    start = await _start_of_newest(caller, head, RECENT_WINDOW)
    return {"order": "newest", **({"since": _iso(start)} if start else {})}


async def _decisions(caller: AdminCaller, head: int) -> dict[str, Any]:
    """Decisions by result per bucket since the later of a day ago and the newest
    ``DECISION_WINDOW`` events' start, in whole buckets (about 24 to 48 of them)."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=DECISION_HOURS)
    start = await _start_of_newest(caller, head, DECISION_WINDOW)
    if start is not None:
        since = max(since, start)
    span = (now - since).total_seconds()
    bucket = next((b for b in DECISION_BUCKETS if span / b <= DECISION_COLUMNS), 3600)
    first = -(-int(since.timestamp()) // bucket) * bucket
    rows = await caller.get(
        "/audit/results", {"since": _iso(datetime.fromtimestamp(first, UTC)), "bucket": str(bucket)}
    )
    counts = {
        (int(datetime.fromisoformat(row["start"]).timestamp()), row["result"]): row["count"]
        for row in rows
    }
    groups = [
        (
            datetime.fromtimestamp(start, UTC).strftime("%H:%M"),
            [float(counts.get((start, result), 0)) for result, _ in DECISION_RESULTS],
        )
        for start in range(first, int(now.timestamp()) + 1, bucket)
    ]
    chart: ColumnChart = stacked_chart(
        groups, DECISION_RESULTS, label_every=max(len(groups) // 8, 1)
    )
    every = "hour" if bucket == 3600 else f"{bucket // 60} minutes"
    since_text = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"chart": chart, "every": every, "since": since_text}


async def _live_sessions(caller: AdminCaller, recent: dict[str, str]) -> dict[str, Any]:
    sessions, trips = await asyncio.gather(
        caller.get("/sessions", {"limit": str(SESSIONS_SHOWN)}),
        caller.get("/audit", {**recent, "action": "guard:", "limit": "1000"}),
    )
    return {"sessions": sessions, "trips": Counter(e["session_id"] for e in trips)}


@routes.get("/overview")
async def overview(request: web.Request) -> web.Response:
    caller = request[CALLER]
    head = await _head(caller)
    recent = await _recent(caller, head)
    fleet, projects, budgets, pending, denials, live, by_session, decisions = await asyncio.gather(
        caller.get("/pause"),
        caller.get("/projects"),
        caller.get("/budgets"),
        caller.get("/approvals", {"state": "pending"}),
        caller.get("/audit", {**recent, "result": "deny", "limit": str(RECENT_EVENTS)}),
        _live_sessions(caller, recent),
        caller.get("/spend", {"by": "session"}),
        _decisions(caller, head),
    )
    first_day = (datetime.now(UTC) - timedelta(days=CHART_DAYS - 1)).date().isoformat()
    per_project = await asyncio.gather(
        *(
            caller.get("/spend", {"by": "day", "project": p["name"], "since": first_day})
            for p in projects
        )
    )
    days = sorted({row["day"] for rows in per_project for row in rows})
    cost = [{row["day"]: row["cost_usd"] for row in rows} for rows in per_project]
    spend_chart = column_chart([(d[5:], [c.get(d, 0.0) for c in cost]) for d in days])
    top = by_session[:12]
    session_chart = column_chart(
        [(s["session"][:12], [float(s["input_tokens"] + s["output_tokens"])]) for s in top]
    )
    return render(
        request,
        "overview.html",
        {
            "fleet": fleet,
            "projects": projects,
            "budgets": budgets,
            "pending": pending,
            "denials": denials,
            "spend_chart": spend_chart,
            "session_chart": session_chart,
            "top_sessions": top,
            "decisions": decisions,
            **live,
        },
    )


@routes.get("/overview/sessions")
async def overview_sessions(request: web.Request) -> web.Response:
    caller = request[CALLER]
    return render(
        request,
        "_sessions.html",
        await _live_sessions(caller, await _recent(caller, await _head(caller))),
    )


@routes.get("/sessions/{session_id}")
async def session_page(request: web.Request) -> web.Response:
    caller = request[CALLER]
    session_id = request.match_info["session_id"]
    session, events = await asyncio.gather(
        caller.get(f"/sessions/{session_id}"),
        caller.page("/audit", {"session": session_id, "limit": "1000"}),
    )
    entries = timeline(events.items)
    return render(
        request, "session.html", {"session": session, "events": events, "entries": entries}
    )


SESSION_STATES = ("active", "paused", "terminated")
SESSIONS_PAGE = 50


@routes.get("/sessions")
async def sessions_page(request: web.Request) -> web.Response:
    """Live and recent sessions across projects, filtered; each with its last action."""
    caller = request[CALLER]
    wanted = {k: request.query[k] for k in ("project", "agent", "state") if request.query.get(k)}
    sessions, projects, agents = await asyncio.gather(
        caller.get("/sessions", {**wanted, "limit": str(SESSIONS_PAGE)}),
        caller.get("/projects"),
        caller.get("/agents"),
    )
    last = await asyncio.gather(
        *(
            caller.get("/audit", {"session": s["id"], "order": "newest", "limit": "1"})
            for s in sessions
        )
    )
    return render(
        request,
        "sessions.html",
        {
            "sessions": sessions,
            "last": {
                s["id"]: (found[0] if found else None)
                for s, found in zip(sessions, last, strict=True)
            },
            "projects": projects,
            "agents": agents,
            "states": SESSION_STATES,
            "wanted": {k: wanted.get(k, "") for k in ("project", "agent", "state")},
        },
    )


@routes.get("/readiness")
async def readiness_page(request: web.Request) -> web.Response:
    wanted = {"project": request.query["project"]} if request.query.get("project") else {}
    return render(
        request, "readiness.html", {"report": await request[CALLER].get("/readiness", wanted)}
    )


@routes.get("/agents")
async def agents_page(request: web.Request) -> web.Response:
    return await _showing(request, "/agents", "agents.html", "agents")


@routes.get("/agents/{agent}")
async def agent_page(request: web.Request) -> web.Response:
    caller = request[CALLER]
    name = request.match_info["agent"]
    agent, keys, sessions = await asyncio.gather(
        caller.get(f"/agents/{name}"),
        caller.get(f"/agents/{name}/keys"),
        caller.get("/sessions", {"agent": name, "limit": "10"}),
    )
    return render(request, "agent.html", {"agent": agent, "keys": keys, "sessions": sessions})


@routes.get("/projects")
async def projects_page(request: web.Request) -> web.Response:
    caller = request[CALLER]
    projects, fleet = await asyncio.gather(caller.get("/projects"), caller.get("/pause"))
    return render(request, "projects.html", {"projects": projects, "fleet": fleet})


async def _policy(caller: AdminCaller, project: str) -> dict[str, Any] | None:
    try:
        policy: dict[str, Any] = await caller.get(f"/projects/{project}/policy")
    except AdminCallFailed as failed:
        if failed.status == 404:
            return None
        raise
    return policy


@routes.get("/mcp")
async def mcp_page(request: web.Request) -> web.Response:
    """Every project's MCP servers, their pinned tools and those withheld."""
    caller = request[CALLER]
    projects = await caller.get("/projects")
    lists = await asyncio.gather(
        *(caller.get(f"/projects/{quote(p['name'], safe='')}/mcp-servers") for p in projects)
    )
    servers = [server for found in lists for server in found]
    return render(request, "mcp.html", {"servers": servers})


@routes.get("/projects/{project}")
async def project_page(request: web.Request) -> web.Response:
    caller = request[CALLER]
    name = request.match_info["project"]
    project, budgets, guards, policy, versions = await asyncio.gather(
        caller.get(f"/projects/{name}"),
        caller.get("/budgets", {"project": name}),
        caller.get(f"/projects/{name}/guards"),
        _policy(caller, name),
        caller.get(f"/projects/{name}/policy/versions"),
    )
    shown = request.query.get("version")
    if shown is not None:
        policy = await caller.get(f"/projects/{name}/policy", {"version": shown})
    return render(
        request,
        "project.html",
        {
            "project": project,
            "budgets": budgets,
            "guards": guards,
            "policy": policy,
            "versions": versions,
        },
    )


@routes.get("/approvals")
async def approvals_page(request: web.Request) -> web.Response:
    everything = await request[CALLER].get("/approvals")
    pending = [a for a in everything if a["state"] == "pending"]
    decided = [a for a in everything if a["state"] != "pending"][:100]
    return render(request, "approvals.html", {"pending": pending, "decided": decided})


@routes.get("/approvals/{approval_id}")
async def approval_page(request: web.Request) -> web.Response:
    path = f"/approvals/{request.match_info['approval_id']}"
    return await _showing(request, path, "approval.html", "approval")


def _audit_query(request: web.Request) -> dict[str, str]:
    query = {k: request.query[k].strip() for k in AUDIT_FILTERS if request.query.get(k, "").strip()}
    if not query.get("since") and not query.get("session"):
        query["since"] = _hours_ago(1)
    return query


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    filters = _audit_query(request)
    params = {**filters, "limit": str(AUDIT_PAGE), "order": "newest"}
    if request.query.get("before"):
        params["before"] = request.query["before"]
    page = await request[CALLER].page("/audit", params)
    next_link = None
    if page.next_page:
        cursor, _, value = page.next_page.partition("=")
        next_link = f"{PREFIX}/audit?" + urlencode({**filters, cursor: value})
    return render(
        request,
        "audit.html",
        {"filters": filters, "events": page.items, "next_link": next_link},
    )


@routes.get("/audit/verify")
async def audit_verify(request: web.Request) -> web.Response:
    return await _showing(request, "/audit/verify", "_verify.html", "report")


@routes.get("/audit/export")
async def audit_export(request: web.Request) -> web.StreamResponse:
    after = request.query.get("after_seq", "0")
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Content-Disposition": 'attachment; filename="tether-audit.jsonl"',
        }
    )
    chunks = request[CALLER].stream("/audit/export", {"after_seq": after})
    first = await anext(chunks, b"")
    await response.prepare(request)
    await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
