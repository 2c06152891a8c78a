"""The admin API's gate: admin token required, role enforced, every call audited (a
request without a valid token once per address per minute, with how many it stands for:
anyone can send them, and the audit chain is never pruned).

After a successful write the change feed is caught up before answering, so the next
request to this process already sees the change (other replicas follow within a second),
unless the handler applied its change here itself (``AdminCall.applied_here``: a kill).
"""

from __future__ import annotations

import contextlib

from aiohttp import web
from aiohttp.typedefs import Handler

from tether.admin.appkeys import (
    ADMIN_CALL,
    ADMIN_REFUSALS,
    ADMIN_TOKEN,
    GATE_NOTE,
    AdminCall,
    runtime_of,
)
from tether.admin.routing import PREFIX
from tether.audit.event import AuditEvent
from tether.errors import AuthenticationFailed, Forbidden, TetherError
from tether.records.fleet import AdminToken, Role
from tether.vault.bearer import AGENT_KEY_PREFIX

__all__ = ["admin_gate"]


PUBLIC_PATHS = frozenset({f"{PREFIX}/openapi.json"})


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


async def _authenticate(request: web.Request) -> AdminToken:
    runtime = runtime_of(request)
    secret = _bearer(request)
    if secret is None:
        raise AuthenticationFailed(
            "send an admin token as 'Authorization: Bearer tta_…'", code="invalid_admin_token"
        )
    if secret.startswith(AGENT_KEY_PREFIX) or runtime.directory.is_agent_key(secret):
        raise Forbidden(
            "agent keys cannot use the admin API; use an admin token",
            code="agent_key_on_admin_api",
        )
    token = await runtime.directory.identify_admin(secret)
    if token is None:
        raise AuthenticationFailed(
            "the admin token is not valid or has been revoked", code="invalid_admin_token"
        )
    return token


def _route_name(request: web.Request) -> str:
    return request.match_info.route.name or f"{request.method} {request.path}"


@web.middleware
async def admin_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    runtime = runtime_of(request)
    token: AdminToken | None = None
    event = AuditEvent(
        actor="admin:unidentified",
        source="admin",
        action=f"admin:{_route_name(request)}",
        resource=f"{request.method} {request.path}",
        result="ok",
        reason="",
    )
    call = request[ADMIN_CALL] = AdminCall(event)
    try:
        token = await _authenticate(request)
        event.actor = f"admin:{token.name}"
        request[ADMIN_TOKEN] = token
        if request.method != "GET" and token.role is not Role.ADMIN:
            raise Forbidden(
                f"admin token {token.name!r} has the viewer role, which is read-only",
                code="read_only_token",
            )
        response = await handler(request)
        if request.method != "GET" and not call.applied_here:
            with contextlib.suppress(TetherError):
                await runtime.feed.catch_up()
        return response
    except TetherError as exc:
        event.result, event.code, event.reason = "error", exc.code, exc.message
        if isinstance(exc, AuthenticationFailed) and ADMIN_TOKEN not in request:
            _sampled(request, call, exc.code)
        raise
    finally:
        note = request.get(GATE_NOTE)
        if note is not None and event.result == "ok":
            event.action, event.result, event.reason = note.action, note.result, note.reason
            event.attributes = note.attributes
        if not call.recorded:
            await runtime.audit.record(event)


def _sampled(request: web.Request, call: AdminCall, code: str) -> None:
    """An unauthenticated refusal is recorded only when its address's window is due
    (``RefusalWindows``), saying how many refusals it stands for."""
    peer = request.remote or "unknown"
    windows = request.app[ADMIN_REFUSALS]
    window = windows.due(peer, code)
    if window is None:
        call.recorded = True
        return
    call.event.attributes = window
    call.event.reason += f" ({windows.sampled(window['refused'], peer, 'a valid admin token')})"
