"""The project's Google service account, held by tether, and the access tokens it mints.

``tether gcp set-credentials P < key.json`` seals the key file like every upstream
secret (provider ``gcp``). Access tokens are minted with ``google-auth`` (a signed JWT
exchanged at the key's ``token_uri``) in a worker thread, cached per project and minted
again five minutes before they expire; one mint at a time per project. Neither the key
nor a token is ever logged or shown.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from tether.errors import TetherError
from tether.identity.upstream_keys import UpstreamKeys

__all__ = ["GCP_PROVIDER", "GcpNotConfigured", "GcpProjectConfig", "VertexTokens"]

GCP_PROVIDER = "gcp"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_BEFORE_SECONDS = 300


class GcpNotConfigured(TetherError):
    code = "gcp_not_configured"


class GcpUnavailable(TetherError):
    """Google's token endpoint did not give tether an access token."""

    code = "gcp_unavailable"


@dataclass(frozen=True, slots=True)
class GcpProjectConfig:
    """What ``tether gcp set-credentials`` stored (the key never leaves tether)."""

    service_account: dict[str, Any] = field(repr=False)
    endpoint_url: str | None = None
    """Vertex AI's endpoint instead of ``https://{region}-aiplatform.googleapis.com``."""

    @property
    def project_id(self) -> str:
        return str(self.service_account["project_id"])

    @property
    def client_email(self) -> str:
        return str(self.service_account["client_email"])

    def endpoint(self, region: str) -> str:
        if self.endpoint_url:
            return self.endpoint_url.rstrip("/")
        if region == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{region}-aiplatform.googleapis.com"

    def dumps(self) -> str:
        return json.dumps(
            {"service_account": self.service_account, "endpoint_url": self.endpoint_url}
        )

    @classmethod
    def loads(cls, text: str) -> GcpProjectConfig:
        data = json.loads(text)
        return cls(data["service_account"], data.get("endpoint_url"))


def _mint(service_account: dict[str, Any]) -> tuple[str, float]:
    """A fresh access token and when it expires (epoch seconds); blocking (network)."""
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import service_account as sa

    try:
        credentials = sa.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            service_account, scopes=SCOPES
        )
        credentials.refresh(google.auth.transport.requests.Request())
    except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
        raise GcpUnavailable(
            f"Google did not issue an access token for {service_account.get('client_email')}: "
            f"{type(exc).__name__}"
        ) from None
    expiry = credentials.expiry
    expires_at = (expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)).timestamp()
    return str(credentials.token), expires_at


class VertexTokens:
    def __init__(self, keys: UpstreamKeys) -> None:
        self._keys = keys
        self._tokens: dict[str, tuple[str, float, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._configs: dict[str, tuple[str, GcpProjectConfig]] = {}
        """Parsed once per stored key (the key file is parsed on no call but the first)."""

    async def config(self, project_id: str, project_name: str) -> GcpProjectConfig:
        sealed = await self._keys.get(project_id, GCP_PROVIDER)
        if not sealed:
            raise GcpNotConfigured(
                f"project {project_name!r} has no Google service account: an operator must run "
                f"`tether gcp set-credentials {project_name} < key.json`"
            )
        known = self._configs.get(project_id)
        if known is not None and known[0] == sealed:
            return known[1]
        config = GcpProjectConfig.loads(sealed)
        self._configs[project_id] = (sealed, config)
        return config

    async def token(self, project_id: str, config: GcpProjectConfig) -> str:
        """A live access token for the project's service account."""
        identity = f"{config.client_email}/{config.service_account.get('private_key_id', '')}"
        cached = self._fresh(project_id, identity)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(project_id, asyncio.Lock())
        async with lock:
            cached = self._fresh(project_id, identity)
            if cached is not None:
                return cached
            token, expires_at = await asyncio.to_thread(_mint, config.service_account)
            self._tokens[project_id] = (token, expires_at, identity)
            return token

    def _fresh(self, project_id: str, identity: str) -> str | None:
        """The cached token, unless it is for another key or expires within five minutes."""
        cached = self._tokens.get(project_id)
        if cached is None or cached[2] != identity:
            return None
        return cached[0] if cached[1] - time.time() > REFRESH_BEFORE_SECONDS else None

    def forget(self, project_id: str) -> None:
        self._tokens.pop(project_id, None)
        self._configs.pop(project_id, None)

    async def apply(self, change: Any) -> None:
        """Change feed: a project's credential changed."""
        if getattr(change, "kind", None) == "credential":
            self.forget(change.ref)
