"""``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tether.errors import AuthenticationFailed
from tether.metrics.instruments import TetherMetrics

__all__ = ["add_metrics_route"]


def add_metrics_route(
    app: web.Application, metrics: TetherMetrics, token: str | None = None
) -> None:
    """With ``token``, scrapes must present it as a bearer token (401 otherwise)."""
    expected = f"Bearer {token}".encode() if token else None

    async def scrape(request: web.Request) -> web.Response:
        if expected is not None:
            presented = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(presented, expected):
                raise AuthenticationFailed(
                    "GET /metrics needs Authorization: Bearer <TETHER_METRICS_TOKEN>",
                    code="invalid_metrics_token",
                )
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/metrics", scrape)
