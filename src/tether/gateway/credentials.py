"""Where agents put their tether key: ``Authorization: Bearer`` or ``x-api-key``.

The same two headers the Anthropic SDK sends (``ANTHROPIC_AUTH_TOKEN`` / ``ANTHROPIC_API_KEY``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from tether.identity.doorkeeper import Doorkeeper

__all__ = ["DOORKEEPER_KEY", "admit_agent", "presented_credential"]

DOORKEEPER_KEY = web.AppKey("doorkeeper", Doorkeeper)


async def admit_agent(request: web.Request, door: str) -> None:
    """Call first in a front door: refuses (401) a request without a live agent key from
    its headers, before its body is read."""
    await request.app[DOORKEEPER_KEY].admit(
        presented_credential(request.headers), door, request.remote or "unknown"
    )


async def refused_without_key(request: web.Request, door: str, code: str) -> None:
    """A front door that checks keys itself (the AWS door: a bad signature) reports its
    refusals here: counted, and sampled into the audit trail like any other."""
    await request.app[DOORKEEPER_KEY].refused(code, door, request.remote or "unknown")


def presented_credential(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None
