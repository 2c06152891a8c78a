"""Typed keys for what the dashboard keeps on its application and its requests."""

from __future__ import annotations

import aiohttp
import jinja2
from aiohttp import web

from tether.dashboard.admin_calls import AdminCaller
from tether.dashboard.logins import Login, LoginBook

__all__ = ["CALLER", "CLIENT", "LOGIN", "LOGINS", "PREFIX", "TEMPLATES"]

PREFIX = "/ui"
LOGINS = web.AppKey("dashboard_logins", LoginBook)
TEMPLATES = web.AppKey("dashboard_templates", jinja2.Environment)
CLIENT = web.AppKey("dashboard_client", aiohttp.ClientSession)
LOGIN = web.RequestKey("dashboard_login", Login)
CALLER = web.RequestKey("dashboard_caller", AdminCaller)
