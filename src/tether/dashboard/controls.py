"""The dashboard's buttons: each posts one admin API call with the operator's token (the
admin gate refuses a viewer's), then goes back to the page it came from."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from tether.dashboard.keys import CALLER, PREFIX
from tether.dashboard.render import render
from tether.errors import BadRequest

__all__ = ["routes"]

routes = web.RouteTableDef()

DECIDED = {"approve": "approved", "deny": "denied"}


async def _reason(request: web.Request) -> str:
    value = (await request.post()).get("reason", "")
    return value.strip() if isinstance(value, str) else ""


def _back(path: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}{path}?done={done}")


@routes.post("/mcp/{project}/{name}/accept")
async def accept_mcp_tools(request: web.Request) -> web.StreamResponse:
    project, name = (
        quote(request.match_info["project"], safe=""),
        quote(request.match_info["name"], safe=""),
    )
    await request[CALLER].post(f"/projects/{project}/mcp-servers/{name}/accept")
    raise _back("/mcp", "accepted")


@routes.post("/sessions/{session_id}/kill")
async def kill_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["session_id"]
    reason = await _reason(request) or "terminated from the dashboard"
    await request[CALLER].post(f"/sessions/{quote(session_id, safe='')}/kill", {"reason": reason})
    raise _back(f"/sessions/{quote(session_id, safe='')}", "terminated")


@routes.post("/sessions/{session_id}/resume")
async def resume_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["session_id"]
    await request[CALLER].post(f"/sessions/{quote(session_id, safe='')}/resume", {"reason": ""})
    raise _back(f"/sessions/{quote(session_id, safe='')}", "resumed")


@routes.post("/agents/{agent}/{change:stop|release|quarantine}")
@routes.post("/projects/{project}/{change:pause|resume}")
async def change_state(request: web.Request) -> web.StreamResponse:
    """Stop, release or quarantine an agent; pause or resume a project: the admin API's
    path is the button's (``/agents/NAME/stop``), and the answer goes back to its page."""
    path = request.rel_url.raw_path.removeprefix(PREFIX)
    await request[CALLER].post(path, {"reason": await _reason(request)})
    raise _back(path.rsplit("/", 1)[0], request.match_info["change"])


@routes.post("/agents/{agent}/keys/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    """The new key is shown on this answer only, once, as the CLI does."""
    name = request.match_info["agent"]
    issued = await request[CALLER].post(f"/agents/{quote(name, safe='')}/keys/rotate")
    return render(request, "rotated.html", {"issued": issued})


@routes.post("/fleet/{change:pause|resume}")
async def pause_fleet(request: web.Request) -> web.StreamResponse:
    change = request.match_info["change"]
    await request[CALLER].post(f"/{change}", {"reason": await _reason(request)})
    raise _back("/overview", f"fleet-{change}")


@routes.post("/approvals/{approval_id}/{decision:approve|deny}")
async def decide_approval(request: web.Request) -> web.StreamResponse:
    approval_id, decision = request.match_info["approval_id"], request.match_info["decision"]
    done = DECIDED[decision]
    reason = await _reason(request) or f"{done} from the dashboard"
    body: dict[str, object] = {"reason": reason}
    if decision == "approve":
        body |= await _narrowed_grant(request)
    await request[CALLER].post(f"/approvals/{quote(approval_id, safe='')}/{decision}", body)
    raise _back(f"/approvals/{quote(approval_id, safe='')}", done)


async def _narrowed_grant(request: web.Request) -> dict[str, object]:
    """A group's grant as the approver narrowed it in the form; the admin API refuses any
    widening, so the form's limits are a convenience, not the check."""
    form = await request.post()
    grant: dict[str, object] = {}
    prefix = form.get("prefix")
    if isinstance(prefix, str) and prefix.strip():
        grant["prefix"] = prefix.strip()
    for field in ("max_uses", "ttl_seconds"):
        value = form.get(field)
        if not isinstance(value, str) or not value.strip():
            continue
        if not value.strip().isdigit():
            raise BadRequest(f"{field} must be a whole number, not {value.strip()!r}")
        grant[field] = int(value.strip())
    return grant
