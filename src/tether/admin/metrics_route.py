"""``GET /metrics`` in the Prometheus text format.

Closed by default (the samples name project ids, spend and refusals): a scrape presents
``TETHER_METRICS_TOKEN`` or an admin token as a bearer token, unless the operator opened
the endpoint on purpose with ``TETHER_METRICS_PUBLIC=1``.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tether.errors import AuthenticationFailed
from tether.identity.directory import Directory
from tether.metrics.fleet import FleetGauges
from tether.metrics.instruments import TetherMetrics

__all__ = ["add_metrics_route"]

log = logging.getLogger(__name__)

CLOSED = (
    "GET /metrics needs Authorization: Bearer <TETHER_METRICS_TOKEN> (or an admin token); "
    "set TETHER_METRICS_PUBLIC=1 to open it without one"
)


def add_metrics_route(
    app: web.Application,
    metrics: TetherMetrics,
    directory: Directory,
    token: str | None = None,
    public: bool = False,
    fleet: FleetGauges | None = None,
) -> None:
    """``fleet``'s gauges are read from the store at each authorised scrape."""
    expected = f"Bearer {token}".encode() if token else None

    async def allowed(request: web.Request) -> bool:
        if public:
            return True
        presented = request.headers.get("Authorization", "")
        if expected is not None and hmac.compare_digest(presented.encode(), expected):
            return True
        scheme, _, secret = presented.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return False
        return await directory.identify_admin(secret.strip()) is not None

    async def scrape(request: web.Request) -> web.Response:
        if not await allowed(request):
            raise AuthenticationFailed(CLOSED, code="invalid_metrics_token")
        if fleet is not None:
            try:
                await fleet.refresh()
            except Exception:
                log.warning("fleet gauges could not be read; reporting the last values read")
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/metrics", scrape)
