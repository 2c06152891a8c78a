"""Where agents put their tether key: ``Authorization: Bearer`` or ``x-api-key``.

The same two headers the Anthropic SDK sends (``ANTHROPIC_AUTH_TOKEN`` / ``ANTHROPIC_API_KEY``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["presented_credential"]


def presented_credential(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None
