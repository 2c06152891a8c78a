"""Typed keys for what the admin handlers read from the application."""

from __future__ import annotations

from aiohttp import web

from tether.runtime import Runtime
from tether.store.records import AdminToken

__all__ = ["ADMIN_TOKEN", "RUNTIME", "caller_of", "runtime_of"]

RUNTIME = web.AppKey("runtime", Runtime)
ADMIN_TOKEN = web.RequestKey("admin_token", AdminToken)


def runtime_of(request: web.Request) -> Runtime:
    return request.config_dict[RUNTIME]


def caller_of(request: web.Request) -> AdminToken:
    token: AdminToken = request[ADMIN_TOKEN]
    return token
