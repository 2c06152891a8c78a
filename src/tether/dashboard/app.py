"""Mounts the dashboard at ``/ui``: its gate (login, CSRF, errors as pages), its pages,
its controls and its static files (htmx is vendored here: nothing is built at install)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from tether.dashboard import controls, views
from tether.dashboard.admin_calls import AdminCaller, AdminCallFailed, loopback_base
from tether.dashboard.keys import CALLER, CLIENT, LOGIN, LOGINS, PREFIX, TEMPLATES
from tether.dashboard.logins import COOKIE, LoginBook
from tether.dashboard.render import make_templates, render
from tether.identity.directory import Directory

__all__ = ["mount_dashboard"]


STATIC = Path(__file__).parent / "static"
PUBLIC = (f"{PREFIX}/login", f"{PREFIX}/static/")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _to_login(request: web.Request) -> web.StreamResponse:
    if request.headers.get("HX-Request"):
        return web.Response(status=401, headers={"HX-Redirect": f"{PREFIX}/login"})
    raise web.HTTPSeeOther(f"{PREFIX}/login")


async def _csrf_sent(request: web.Request) -> str | None:
    header = request.headers.get("X-CSRF-Token")
    if header:
        return header
    form = await request.post()
    value = form.get("csrf")
    return value if isinstance(value, str) else None


@web.middleware
async def dashboard_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Logged in, and for every POST the login's CSRF token; admin API refusals and
    missing pages are rendered as pages."""
    response: web.StreamResponse
    try:
        if request.path.startswith(PUBLIC):
            response = await handler(request)
        else:
            response = await _logged_in(request, handler)
    except AdminCallFailed as failed:
        if failed.status == 401:
            request.app[LOGINS].log_out(request.cookies.get(COOKIE))
            return _to_login(request)
        response = render(request, "error.html", {"failure": failed}, status=failed.status)
    except web.HTTPNotFound:
        failure = AdminCallFailed(404, "not_found", f"no page {request.path}")
        response = render(request, "error.html", {"failure": failure}, status=404)
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


async def _logged_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    login = request.app[LOGINS].find(request.cookies.get(COOKIE))
    if login is None:
        return _to_login(request)
    request[LOGIN] = login
    if request.method == "POST" and not login.csrf_matches(await _csrf_sent(request)):
        failure = AdminCallFailed(
            403, "csrf_failed", "this form was not sent from a dashboard page; reload and retry"
        )
        return render(request, "error.html", {"failure": failure}, status=403)
    request[CALLER] = AdminCaller(request.app[CLIENT], loopback_base(request), login.token)
    return await handler(request)


def mount_dashboard(app: web.Application, directory: Directory) -> None:
    dashboard = web.Application(middlewares=[dashboard_gate])
    dashboard[LOGINS] = LoginBook(directory)
    dashboard[TEMPLATES] = make_templates()

    async def client(sub: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=600, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            sub[CLIENT] = session
            yield

    dashboard.cleanup_ctx.append(client)
    dashboard.router.add_static("/static", STATIC)
    dashboard.add_routes(views.routes)
    dashboard.add_routes(controls.routes)
    app.add_subapp(PREFIX, dashboard)
    app.router.add_get(PREFIX, _home)


async def _home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(f"{PREFIX}/")
