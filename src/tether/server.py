"""The tether HTTP server: front doors and the admin API on one aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text

from tether import __version__
from tether.admin.app import mount_admin
from tether.admin.metrics_route import add_metrics_route
from tether.budgets.batches import BatchReservations
from tether.config import Settings
from tether.dashboard import mount_dashboard
from tether.gateway.anthropic.proxy import AnthropicGateway, GatewaySettings
from tether.gateway.authorize import add_authorize_routes
from tether.gateway.aws.door import AwsDoor
from tether.gateway.bedrock.door import BedrockDoor
from tether.gateway.claude_code.hooks import add_claude_code_hook_routes
from tether.gateway.credentials import DOORKEEPER_KEY
from tether.gateway.mcp.routes import add_mcp_routes
from tether.gateway.mcp_servers.door import McpServerDoor
from tether.gateway.model.calls import ModelCalls
from tether.gateway.tasks import add_task_routes
from tether.gateway.vertex.door import VertexDoor
from tether.identity.doorkeeper import Doorkeeper
from tether.logs.access import AccessLogger
from tether.runtime import Runtime
from tether.slack.interactions import SlackInteractions
from tether.web.bodies import BODY_TIMEOUT_KEY
from tether.web.connections import ConnectionGuard, GuardedSite
from tether.web.exact_routes import ExactRoutesRunner
from tether.web.readiness import ReadinessCheck, add_health_routes
from tether.web.request_lifecycle import RequestLifecycle
from tether.web.shared_lane import HEAVY_WORK_KEY

__all__ = ["RUNTIME_KEY", "build_app", "make_runner", "make_site", "warm_up"]

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

    checks: dict[str, ReadinessCheck] = {"store": store, "audit": audit, "change_feed": change_feed}
    memory = runtime.guards.memory
    if runtime.settings.redis_url:

        async def guards() -> str | None:
            await memory.ping()
            return None

        checks["guards"] = guards
    return checks


def build_app(runtime: Runtime) -> web.Application:
    """An application serving an already started runtime (the caller stops it)."""
    settings = runtime.settings
    app = web.Application(
        middlewares=[RequestLifecycle(runtime.requests).middleware],
        client_max_size=settings.max_message_bytes,
    )
    app[RUNTIME_KEY] = runtime
    app[BODY_TIMEOUT_KEY] = settings.body_timeout
    app[DOORKEEPER_KEY] = Doorkeeper(
        runtime.directory, runtime.audit, runtime.metrics, settings.refusal_sample_seconds
    )
    add_health_routes(app, __version__, _readiness_checks(runtime))
    add_metrics_route(
        app,
        runtime.metrics,
        runtime.directory,
        settings.metrics_token,
        settings.metrics_public,
        runtime.fleet_gauges,
    )
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
        GatewaySettings(
            runtime.settings.anthropic_base_url,
            runtime.settings.max_message_bytes,
            runtime.settings.stream_keepalive_seconds,
        ),
        batches=BatchReservations(
            runtime.budget_book, runtime.message_batches, runtime.session_store
        ),
        canceller=runtime.batch_canceller,
        followers=runtime.directory,
    ).add_routes(app)
    model_calls = ModelCalls(
        runtime.pipeline,
        runtime.anthropic,
        runtime.inflight,
        runtime.settings.stream_keepalive_seconds,
    )
    bedrock = BedrockDoor(model_calls, runtime.aws, settings.max_message_bytes)
    bedrock.add_routes(app)
    VertexDoor(model_calls, runtime.vertex_tokens, settings.max_message_bytes).add_routes(app)
    AwsDoor(
        runtime.pipeline,
        runtime.approval_waiter,
        runtime.directory,
        runtime.aws,
        runtime.inflight,
        bedrock,
    ).add_routes(app)
    McpServerDoor(
        runtime.pipeline,
        runtime.directory,
        runtime.mcp_registry,
        runtime.inflight,
        runtime.settings.max_body_bytes,
        runtime.settings.upstream_connect_timeout,
        runtime.settings.upstream_read_timeout,
    ).add_routes(app)
    SlackInteractions(
        runtime.slack,
        runtime.approvals,
        runtime.approval_decider,
        runtime.admin_tokens,
        runtime.directory,
        runtime.audit,
        runtime.slack_replies,
        runtime.settings.public_url,
    ).add_routes(app)
    mount_admin(app, runtime, __version__)
    mount_dashboard(app, runtime.directory)
    return app


def warm_up(app: web.Application) -> None:
    """Start now what the first requests would otherwise wait for: the heavy-work lane's
    worker process (``tether up`` only; tests start it on first use)."""
    app[HEAVY_WORK_KEY].warm()


def stop_heavy_work(app: web.Application) -> None:
    """Stop the heavy-work lane's workers whatever became of the app's cleanup (a cleanup
    step that fails skips those after it): a worker left running holds the exit."""
    app[HEAVY_WORK_KEY].close()


def make_runner(
    app: web.Application, settings: Settings, access_log: logging.Logger | None = None
) -> web.AppRunner:
    """``access_log``: where each request is logged (``tether up``), or nowhere."""
    return ExactRoutesRunner(
        app,
        access_log=access_log,
        access_log_class=AccessLogger,
        handle_signals=False,
        keepalive_timeout=settings.keepalive_timeout,
        shutdown_timeout=settings.shutdown_grace_seconds,
    )


def make_site(runner: web.AppRunner, settings: Settings, host: str, port: int) -> GuardedSite:
    """A listening site with the connection cap and the header deadline applied."""
    guard = ConnectionGuard(settings.max_connections, settings.header_timeout)
    return GuardedSite(
        runner, host, port, guard, reuse_address=True, reuse_port=settings.reuse_port or None
    )


async def serving_app(settings: Settings) -> web.Application:
    """An application that starts its runtime on start-up and stops it on clean-up."""
    runtime = await Runtime.start(settings)
    app = build_app(runtime)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await runtime.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
