"""Assembles the admin sub-application mounted at ``/admin/v1``."""

from __future__ import annotations

from aiohttp import web

from tether.admin import (  # noqa: F401  (routes)
    agents,
    approvals,
    audit,
    aws,
    budgets,
    drills,
    gcp,
    guards,
    kill,
    mcp_servers,
    policy,
    policy_shadow,
    policy_trail,
    projects,
    readiness,
    sessions,
    slack,
    spend,
    tasks,
    tokens,
    webhooks,
)
from tether.admin.appkeys import ADMIN_REFUSALS, RUNTIME
from tether.admin.gate import admin_gate
from tether.admin.openapi import add_openapi_route
from tether.admin.routing import PREFIX, routes
from tether.identity.refusal_windows import RefusalWindows
from tether.runtime import Runtime

__all__ = ["mount_admin"]


def mount_admin(app: web.Application, runtime: Runtime, version: str) -> None:
    admin = web.Application(middlewares=[admin_gate])
    admin[RUNTIME] = runtime
    admin[ADMIN_REFUSALS] = RefusalWindows()
    routes.add_to(admin)
    add_openapi_route(admin, routes, version)
    app.add_subapp(PREFIX, admin)
