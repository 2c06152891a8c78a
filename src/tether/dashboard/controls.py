"""The dashboard's buttons: each posts one admin API call with the operator's token (the
admin gate refuses a viewer's), then goes back to the page it came from."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from tether.dashboard.keys import CALLER, PREFIX
from tether.dashboard.render import render

__all__ = ["add_routes"]

AGENT_CHANGES = ("stop", "release", "quarantine")


async def _reason(request: web.Request) -> str:
    value = (await request.post()).get("reason", "")
    return value.strip() if isinstance(value, str) else ""


def _back(path: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}{path}?done={done}")


async def kill_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["session_id"]
    reason = await _reason(request) or "terminated from the dashboard"
    await request[CALLER].post(f"/sessions/{quote(session_id)}/kill", {"reason": reason})
    raise _back(f"/sessions/{quote(session_id)}", "terminated")


async def resume_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["session_id"]
    await request[CALLER].post(f"/sessions/{quote(session_id)}/resume", {"reason": ""})
    raise _back(f"/sessions/{quote(session_id)}", "resumed")


async def change_agent(request: web.Request) -> web.StreamResponse:
    name, change = request.match_info["agent"], request.match_info["change"]
    if change not in AGENT_CHANGES:
        raise web.HTTPNotFound()
    await request[CALLER].post(
        f"/agents/{quote(name)}/{change}", {"reason": await _reason(request)}
    )
    raise _back(f"/agents/{quote(name)}", change)


async def rotate_key(request: web.Request) -> web.Response:
    """The new key is shown on this answer only, once, as the CLI does."""
    name = request.match_info["agent"]
    issued = await request[CALLER].post(f"/agents/{quote(name)}/keys/rotate")
    return render(request, "rotated.html", {"issued": issued})


async def pause_project(request: web.Request) -> web.StreamResponse:
    name, change = request.match_info["project"], request.match_info["change"]
    if change not in ("pause", "resume"):
        raise web.HTTPNotFound()
    await request[CALLER].post(
        f"/projects/{quote(name)}/{change}", {"reason": await _reason(request)}
    )
    raise _back(f"/projects/{quote(name)}", change)


async def pause_fleet(request: web.Request) -> web.StreamResponse:
    change = request.match_info["change"]
    if change not in ("pause", "resume"):
        raise web.HTTPNotFound()
    await request[CALLER].post(f"/{change}", {"reason": await _reason(request)})
    raise _back("/overview", f"fleet-{change}")


async def decide_approval(request: web.Request) -> web.StreamResponse:
    approval_id, decision = request.match_info["approval_id"], request.match_info["decision"]
    done = {"approve": "approved", "deny": "denied"}.get(decision)
    if done is None:
        raise web.HTTPNotFound()
    reason = await _reason(request) or f"{done} from the dashboard"
    await request[CALLER].post(f"/approvals/{quote(approval_id)}/{decision}", {"reason": reason})
    raise _back(f"/approvals/{quote(approval_id)}", done)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sessions/{session_id}/kill", kill_session)
    app.router.add_post("/sessions/{session_id}/resume", resume_session)
    app.router.add_post("/agents/{agent}/keys/rotate", rotate_key)
    app.router.add_post("/agents/{agent}/{change}", change_agent)
    app.router.add_post("/projects/{project}/{change}", pause_project)
    app.router.add_post("/fleet/{change}", pause_fleet)
    app.router.add_post("/approvals/{approval_id}/{decision}", decide_approval)
