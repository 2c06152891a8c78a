"""``/healthz`` (the process answers; touches nothing) and ``/readyz`` (it can serve:
every dependency answered), for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

__all__ = ["ReadinessCheck", "add_health_routes"]

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else what is wrong (shown to the caller)."""

CHECK_TIMEOUT_SECONDS = 3.0


async def _run(check: ReadinessCheck) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s"
    except Exception as exc:
        message = getattr(exc, "message", None)
        return str(message) if message else type(exc).__name__


def add_health_routes(
    app: web.Application, version: str, checks: Mapping[str, ReadinessCheck]
) -> None:
    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": version})

    async def ready(_request: web.Request) -> web.Response:
        names = list(checks)
        results = await asyncio.gather(*(_run(checks[name]) for name in names))
        problems = {name: problem for name, problem in zip(names, results, strict=True) if problem}
        body = {
            "status": "not_ready" if problems else "ready",
            "version": version,
            "checks": {name: problems.get(name, "ok") for name in names},
        }
        return web.json_response(body, status=503 if problems else 200)

    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
