"""The tether HTTP server: front doors and the admin API on one aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text

from tether import __version__
from tether.admin.app import mount_admin
from tether.config import Settings
from tether.gateway.anthropic.proxy import AnthropicGateway, GatewaySettings
from tether.gateway.authorize import add_authorize_routes
from tether.gateway.claude_code.hooks import add_claude_code_hook_routes
from tether.gateway.mcp.server import add_mcp_routes
from tether.gateway.tasks import add_task_routes
from tether.logs.access import request_scope_middleware
from tether.metrics.endpoint import add_metrics_route
from tether.runtime import Runtime
from tether.web.errors import error_middleware
from tether.web.readiness import ReadinessCheck, add_health_routes

__all__ = ["RUNTIME_KEY", "build_app"]

RUNTIME_KEY = web.AppKey("tether_runtime", Runtime)


def _readiness_checks(runtime: Runtime) -> dict[str, ReadinessCheck]:
    async def store() -> str | None:
        async with runtime.db.read() as conn:
            await conn.execute(text("SELECT 1"))
        return None

    async def audit() -> str | None:
        return runtime.audit.problem()

    async def change_feed() -> str | None:
        return runtime.feed.problem()

    return {"store": store, "audit": audit, "change_feed": change_feed}


def build_app(runtime: Runtime) -> web.Application:
    """An application serving an already started runtime (the caller stops it)."""
    app = web.Application(
        middlewares=[request_scope_middleware, error_middleware],
        client_max_size=runtime.settings.max_message_bytes,
    )
    app[RUNTIME_KEY] = runtime
    add_health_routes(app, __version__, _readiness_checks(runtime))
    add_metrics_route(app, runtime.metrics, runtime.settings.metrics_token)
    add_authorize_routes(
        app, runtime.pipeline, runtime.approval_waiter, runtime.settings.max_body_bytes
    )
    add_claude_code_hook_routes(
        app, runtime.pipeline, runtime.approval_waiter, runtime.settings.max_body_bytes
    )
    add_task_routes(app, runtime.task_desk, runtime.settings.max_body_bytes)
    add_mcp_routes(app, runtime.task_desk, runtime.settings.max_body_bytes)
    AnthropicGateway(
        runtime.pipeline,
        runtime.anthropic,
        runtime.upstream_keys,
        runtime.inflight,
        GatewaySettings(runtime.settings.anthropic_base_url, runtime.settings.max_message_bytes),
    ).add_routes(app)
    mount_admin(app, runtime, __version__)
    return app


async def serving_app(settings: Settings) -> web.Application:
    """An application that starts its runtime on start-up and stops it on clean-up."""
    runtime = await Runtime.start(settings)
    app = build_app(runtime)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await runtime.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
