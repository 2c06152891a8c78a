"""``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tether.metrics.instruments import TetherMetrics

__all__ = ["add_metrics_route"]


def add_metrics_route(app: web.Application, metrics: TetherMetrics) -> None:
    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/metrics", scrape)
