"""What an agent's request to an upstream MCP server carries instead of the agent's key:
the server's own credential, given on stdin when it was added and sealed since."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from tether.errors import TetherError
from tether.mcp_servers.oauth import parse_client_credentials

__all__ = ["AUTH_KINDS", "credential_headers", "parse_credential"]

AUTH_KINDS = ("none", "bearer", "headers", "oauth")


class CredentialInvalid(TetherError):
    """The request is well-formed but its credential cannot be used (422)."""

    code = "mcp_credential_invalid"


def parse_credential(kind: str, secret: str | None) -> str | None:
    """Checks the credential as given and returns the text to seal (None for ``none``)."""
    if kind not in AUTH_KINDS:
        raise CredentialInvalid(f"auth must be one of: {', '.join(AUTH_KINDS)}")
    if kind == "none":
        if secret:
            raise CredentialInvalid("auth none takes no credential; use bearer or headers")
        return None
    if not secret or not secret.strip():
        raise CredentialInvalid(f"auth {kind} needs the credential on stdin")
    secret = secret.strip()
    if kind == "oauth":
        try:
            grant = parse_client_credentials(secret)
        except ValueError as exc:
            raise CredentialInvalid(str(exc)) from None
        return json.dumps({k: v for k, v in asdict(grant).items() if v is not None})
    if kind == "bearer":
        if any(c.isspace() for c in secret):
            raise CredentialInvalid("a bearer token is one word with no spaces or line breaks")
        return secret
    try:
        headers: Any = json.loads(secret)
    except ValueError:
        raise CredentialInvalid(
            'auth headers needs a JSON object on stdin, e.g. {"X-Api-Key": "…"}'
        ) from None
    if (
        not isinstance(headers, dict)
        or not headers
        or not all(
            isinstance(k, str) and isinstance(v, str) and k and "\n" not in v
            for k, v in headers.items()
        )
    ):
        raise CredentialInvalid("auth headers needs a JSON object of header names to string values")
    return json.dumps(headers)


def credential_headers(kind: str, secret: str | None) -> dict[str, str]:
    """The headers a static credential (bearer, headers) adds; OAuth's come per token."""
    if kind == "bearer" and secret:
        return {"Authorization": f"Bearer {secret}"}
    if kind == "headers" and secret:
        headers: dict[str, str] = json.loads(secret)
        return headers
    return {}
