"""Remote MCP servers registered per project: where they are, their sealed credential and
the tool definitions pinned the first time they were listed."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound
from tether.records.mcp_servers import McpServer, ToolPin
from tether.store.changes import record_change
from tether.store.database import Database
from tether.store.schema import mcp_servers
from tether.vault.sealed_box import SealedBox

__all__ = ["McpServerStore"]

CHANGE_KIND = "mcp_server"


def _context(project_id: str, name: str) -> str:
    return f"mcp_server:{project_id}:{name}"


def _server(row: Any) -> McpServer:
    pins: dict[str, Any] = json.loads(row.pins or "{}")
    tools = {
        name: ToolPin(p.get("pinned"), p["seen"], bool(p.get("destructive")))
        for name, p in pins.get("tools", {}).items()
    }
    return McpServer(
        row.id,
        row.project_id,
        row.name,
        row.url,
        row.auth_kind,
        row.created_at,
        row.updated_at,
        bool(pins.get("listed")),
        tools,
    )


class McpServerStore:
    def __init__(self, db: Database, box: SealedBox) -> None:
        self._db = db
        self._box = box

    async def add(
        self, project_id: str, name: str, url: str, auth_kind: str, secret: str | None
    ) -> McpServer:
        ts = now_ms()
        sealed = self._box.seal(secret, _context(project_id, name)) if secret else None
        server = McpServer(new_id(), project_id, name, url, auth_kind, ts, ts)
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    mcp_servers.insert().values(
                        id=server.id,
                        project_id=project_id,
                        name=name,
                        url=url,
                        auth_kind=auth_kind,
                        sealed=sealed,
                        pins=server.pins_json(),
                        created_at=ts,
                        updated_at=ts,
                    )
                )
                await record_change(conn, CHANGE_KIND, project_id)
        except (IntegrityError, Conflict):
            raise Conflict(
                f"the project already has an MCP server named {name}: remove it first"
            ) from None
        return server

    async def of_project(self, project_id: str) -> list[McpServer]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(mcp_servers)
                .where(mcp_servers.c.project_id == project_id)
                .order_by(mcp_servers.c.name)
            )
        return [_server(r) for r in rows]

    async def get(self, project_id: str, name: str) -> McpServer:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(mcp_servers).where(
                        mcp_servers.c.project_id == project_id, mcp_servers.c.name == name
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no MCP server named {name} in this project (see `tether mcp list`)")
        return _server(row)

    async def reveal(self, server: McpServer) -> str | None:
        """The plain credential, for the forwarder only; never for an API response."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(mcp_servers.c.sealed).where(mcp_servers.c.id == server.id)
                )
            ).first()
        if row is None or row.sealed is None:
            return None
        return self._box.unseal(bytes(row.sealed), _context(server.project_id, server.name))

    async def save_pins(self, server: McpServer) -> None:
        server.updated_at = now_ms()
        async with self._db.write() as conn:
            await conn.execute(
                mcp_servers.update()
                .where(mcp_servers.c.id == server.id)
                .values(pins=server.pins_json(), updated_at=server.updated_at)
            )
            await record_change(conn, CHANGE_KIND, server.project_id)

    async def accept(self, project_id: str, name: str) -> McpServer:
        """The operator accepts every tool definition the server last listed."""
        server = await self.get(project_id, name)
        for pin in server.tools.values():
            pin.pinned = pin.seen
        await self.save_pins(server)
        return server

    async def remove(self, project_id: str, name: str) -> None:
        async with self._db.write() as conn:
            result = await conn.execute(
                mcp_servers.delete().where(
                    mcp_servers.c.project_id == project_id, mcp_servers.c.name == name
                )
            )
            await record_change(conn, CHANGE_KIND, project_id)
        if not result.rowcount:
            raise NotFound(f"no MCP server named {name} in this project")
