"""OAuth 2.0 client credentials for an upstream MCP server: tether, not the agent, asks
the server's token endpoint for an access token, keeps it in memory only, and asks again
shortly before it expires (or once after the server answered 401 to it)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import aiohttp

from tether.errors import TetherError

__all__ = ["ClientCredentials", "OAuthTokens", "TokenUnavailable", "parse_client_credentials"]

TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=10)
EARLY_SECONDS = 60.0
"""A token is refreshed this long before it expires (or a fifth of its life, if shorter)."""
FIELDS = {"token_url", "client_id", "client_secret", "scope", "audience", "resource", "client_auth"}
ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class TokenUnavailable(TetherError):
    """The token endpoint gave no access token: the call fails closed (502)."""

    code = "mcp_oauth_failed"


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None
    resource: str | None = None
    client_auth: str = "basic"
    """``basic`` (HTTP Basic, as RFC 6749 requires servers to accept) or ``post`` (in the form)."""

    def basic_authorization(self) -> str:
        """RFC 6749 2.3.1: each part form-encoded, then HTTP Basic."""
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials"}
        for name in ("scope", "audience", "resource"):
            value = getattr(self, name)
            if value:
                form[name] = value
        if self.client_auth == "post":
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        return form


def parse_client_credentials(text: str) -> ClientCredentials:
    """The grant as sealed (JSON); raises ValueError with a message naming no secret."""
    try:
        given: Any = json.loads(text)
    except ValueError:
        raise ValueError(
            'auth oauth needs a JSON object on stdin: {"token_url": "https://…", '
            '"client_id": "…", "client_secret": "…", "scope": "…"}'
        ) from None
    if not isinstance(given, dict):
        raise ValueError("auth oauth needs a JSON object on stdin")
    unknown = sorted(set(given) - FIELDS)
    if unknown:
        raise ValueError(f"auth oauth: unknown fields {', '.join(unknown)}")
    for name in ("token_url", "client_id", "client_secret"):
        if not isinstance(given.get(name), str) or not given[name].strip():
            raise ValueError(f"auth oauth needs {name} (a non-empty string)")
    for name in ("scope", "audience", "resource"):
        if given.get(name) is not None and not isinstance(given[name], str):
            raise ValueError(f"auth oauth: {name} must be a string")
    if not re.match(r"^https?://[!-~]+$", given["token_url"]):
        raise ValueError("auth oauth: token_url must be an http(s) URL")
    if given.get("client_auth", "basic") not in ("basic", "post"):
        raise ValueError("auth oauth: client_auth must be basic or post")
    return ClientCredentials(**given)


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float


class OAuthTokens:
    """Access tokens per server id, in this process's memory; one request at a time per
    server, so a burst of calls on an expired token asks the endpoint once."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, key: str, grant: ClientCredentials, client: aiohttp.ClientSession) -> str:
        held = self._tokens.get(key)
        if held is not None and time.monotonic() < held.refresh_at:
            return held.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            held = self._tokens.get(key)
            if held is not None and time.monotonic() < held.refresh_at:
                return held.value
            fresh = await _request(grant, client)
            self._tokens[key] = fresh
            return fresh.value

    def rejected(self, key: str, value: str) -> None:
        """The server answered 401 to ``value``: the next call asks for a new token (unless
        a concurrent call already did)."""
        held = self._tokens.get(key)
        if held is not None and held.value == value:
            del self._tokens[key]

    def forget(self, key: str) -> None:
        self._tokens.pop(key, None)
        self._locks.pop(key, None)


async def _request(grant: ClientCredentials, client: aiohttp.ClientSession) -> _Token:
    what = f"the OAuth token endpoint {_shown(grant.token_url)}"
    headers = {"Accept": "application/json"}
    if grant.client_auth == "basic":
        headers["Authorization"] = grant.basic_authorization()
    started = time.monotonic()
    try:
        async with client.post(
            grant.token_url,
            data=grant.form(),
            headers=headers,
            timeout=TOKEN_TIMEOUT,
            allow_redirects=False,  # the client secret would be posted to another host
        ) as answer:
            status = answer.status
            raw = await answer.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenUnavailable(f"{what} could not be reached: {type(exc).__name__}") from None
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        named = f" ({error})" if isinstance(error, str) and ERROR_CODE.match(error) else ""
        raise TokenUnavailable(f"{what} refused the client credentials: HTTP {status}{named}")
    value, kind = body.get("access_token"), body.get("token_type", "Bearer")
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise TokenUnavailable(f"{what} answered without a usable access_token")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenUnavailable(f"{what} issued a {kind!s:.20} token; tether sends bearer tokens")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
        refresh_at = started + lifetime - min(EARLY_SECONDS, lifetime / 5)
    else:
        refresh_at = float("inf")
    return _Token(value, refresh_at)


def _shown(url: str) -> str:
    """The token URL as an error may name it: without any ``user:password@``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
