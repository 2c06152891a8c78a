"""Pages from Jinja2 templates (autoescaped), with the login and its CSRF token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from tether.dashboard.charts import percent
from tether.dashboard.keys import LOGIN, PREFIX, TEMPLATES

__all__ = ["make_templates", "render"]


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ago(value: str | None) -> str:
    """How long ago an ISO time was, in the largest unit that fits."""
    moment = _moment(value)
    if moment is None:
        return "—"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def segment(value: object) -> str:
    """A value as one path segment of a link or a form's action: every ``/``, ``?``, ``#``
    and ``%`` encoded. Escaping for HTML is not enough: a session id is the agent's to
    choose, and ``x/../../approvals/A/approve?`` left as it is sends a Kill button's
    post to another route."""
    return quote(str(value), safe="")


def make_templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("tether.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(ago=ago, usd=usd, seg=segment)
    environment.globals.update(percent=percent, prefix=PREFIX)
    return environment


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    login = request.get(LOGIN)
    page = request.app[TEMPLATES].get_template(template)
    body = page.render(
        login=login, path=request.path, done_key=request.query.get("done", ""), **context
    )
    return web.Response(text=body, status=status, content_type="text/html")
