"""The MCP servers the door serves, read once and held in memory until the change feed
says a project's servers changed (added, removed, pins accepted), with their credentials
unsealed once and, for OAuth client credentials, the current access token."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from tether.mcp_servers.credentials import credential_headers
from tether.mcp_servers.oauth import ClientCredentials, OAuthTokens, parse_client_credentials
from tether.mcp_servers.pins import pin_listing
from tether.records.mcp_servers import McpServer
from tether.store.alerts import AlertStore
from tether.store.changes import Change
from tether.store.mcp_servers import CHANGE_KIND, McpServerStore

__all__ = ["McpRegistry"]

log = logging.getLogger(__name__)


class McpRegistry:
    def __init__(self, store: McpServerStore, alerts: AlertStore) -> None:
        self._store = store
        self._alerts = alerts
        self._servers: dict[tuple[str, str], McpServer] = {}
        self._headers: dict[str, dict[str, str]] = {}
        self._grants: dict[str, ClientCredentials] = {}
        self._tokens = OAuthTokens()

    async def get(self, project_id: str, name: str) -> McpServer:
        key = (project_id, name)
        server = self._servers.get(key)
        if server is None:
            server = self._servers[key] = await self._store.get(project_id, name)
        return server

    def cached(self, project_id: str, name: str) -> McpServer | None:
        return self._servers.get((project_id, name))

    async def upstream_headers(
        self, server: McpServer, client: aiohttp.ClientSession
    ) -> dict[str, str]:
        """What authenticates tether to the server; an OAuth server's token is fetched
        with ``client`` when there is none or it is about to expire (raises
        ``TokenUnavailable``)."""
        if server.auth_kind == "oauth":
            grant = self._grants.get(server.id)
            if grant is None:
                secret = await self._store.reveal(server)
                grant = self._grants[server.id] = parse_client_credentials(secret or "")
            token = await self._tokens.token(server.id, grant, client)
            return {"Authorization": f"Bearer {token}"}
        headers = self._headers.get(server.id)
        if headers is None:
            secret = await self._store.reveal(server)
            headers = self._headers[server.id] = credential_headers(server.auth_kind, secret)
        return headers

    def rejected(self, server: McpServer, sent: dict[str, str]) -> bool:
        """The server answered 401 to the headers ``sent``: whether asking again with a
        new access token can help (only for OAuth, once per token)."""
        if server.auth_kind != "oauth":
            return False
        self._tokens.rejected(server.id, sent.get("Authorization", "").removeprefix("Bearer "))
        return True

    async def listed(self, server: McpServer, tools: list[dict[str, Any]]) -> None:
        """Pins a listing; a tool newly withheld is alerted on once."""
        changed, withheld = pin_listing(server, tools)
        if not changed:
            return
        await self._store.save_pins(server)
        if withheld:
            log.warning(
                "MCP server %s: tool definitions withheld until accepted: %s",
                server.name,
                ", ".join(withheld),
            )
            await self._alerts.notify(
                server.project_id,
                "mcp.tool_changed",
                {
                    "server": server.name,
                    "tools": withheld,
                    "message": f"MCP server {server.name} changed or added tools "
                    f"{', '.join(withheld)}: withheld until `tether mcp accept {server.name}`",
                },
            )

    async def apply(self, change: Change) -> None:
        if change.kind == CHANGE_KIND:
            for key in [k for k in self._servers if k[0] == change.ref]:
                gone = self._servers.pop(key).id
                self._headers.pop(gone, None)
                self._grants.pop(gone, None)
